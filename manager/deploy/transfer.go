package deploy

import (
	"errors"
	"fmt"
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

// transferRate says how long sending n bytes took and at what rate, for a
// transfer step's detail: " in 1.204s, 55.7 MB/s", or "" for no time.
func transferRate(n int64, d time.Duration) string {
	if d <= 0 || n <= 0 {
		return ""
	}
	return fmt.Sprintf(" in %s, %.1f MB/s", d.Round(time.Millisecond), float64(n)/1e6/d.Seconds())
}
