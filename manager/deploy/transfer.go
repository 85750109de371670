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

// transferProgress is a running transfer step's detail: "sending f: 12.0
// of 48.0 MB (25%), 40.1 MB/s", the rate over the bytes sent in this run
// (a resumed transfer starts at partial).
func transferProgress(file string, at, partial, size int64, d time.Duration) string {
	s := fmt.Sprintf("sending %s: %.1f of %.1f MB (%d%%)", file, float64(at)/1e6, float64(size)/1e6, at*100/max(size, 1))
	if d > 0 && at > partial {
		s += fmt.Sprintf(", %.1f MB/s", float64(at-partial)/1e6/d.Seconds())
	}
	return s
}

// transferRate says how long sending n bytes took and at what rate, for a
// transfer step's detail: " in 1.204s, 55.7 MB/s", or "" for no time.
func transferRate(n int64, d time.Duration) string {
	if d <= 0 || n <= 0 {
		return ""
	}
	return fmt.Sprintf(" in %s, %.1f MB/s", d.Round(time.Millisecond), float64(n)/1e6/d.Seconds())
}
