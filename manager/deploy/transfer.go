package deploy

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/pkg"
)

// transferError says what a failed package transfer means to the person
// reading the job. The tunnel reports an agent that dies or drops off the
// network mid-stream as fleet.ErrAgentNotOnline with gRPC's words for it
// ("error reading from server: EOF"); that reads as a bug, while it is an
// outage with a known way out: the agent keeps the bytes it received, so a
// deploy after it is back resumes the transfer. Other errors pass
// unchanged. The cause stays wrapped.
func transferError(n cluster.Node, p pkg.Package, err error) error {
	if !errors.Is(err, fleet.ErrAgentNotOnline) {
		return err
	}
	return fmt.Errorf("the agent on %s went offline during the transfer of %s (connection lost); "+
		"it keeps what it received: deploy again once it is back online and the transfer resumes (%w)",
		n.ManagerIP, p.FileName, err)
}

// progressEvery is how often a running transfer's step tells how far it is.
var progressEvery = time.Second

// readProgress reports the furthest offset read from r.
type readProgress struct {
	r      io.ReaderAt
	report func(at int64)
	at     int64
}

func (rp *readProgress) ReadAt(b []byte, off int64) (int, error) {
	n, err := rp.r.ReadAt(b, off)
	if end := off + int64(n); end > rp.at {
		rp.at = end
		rp.report(end)
	}
	return n, err
}
