// Package progress words how far a transfer has gone, as the details of
// job steps read it: "sending f: 12.0 of 48.0 MB (25%), 40.1 MB/s" while
// it runs, " in 1.204s, 55.7 MB/s" once it is done. The package transfers
// of deployments and the agent uploads of SSH bootstraps say it alike, and
// a console reads both the same way.
package progress

import (
	"fmt"
	"time"
)

// Sending is a running transfer's detail: "sending f: 12.0 of 48.0 MB
// (25%), 40.1 MB/s", the rate over the bytes sent in this run, d (a
// resumed transfer starts at partial).
func Sending(file string, at, partial, size int64, d time.Duration) string {
	s := fmt.Sprintf("sending %s: %.1f of %.1f MB (%d%%)", file, float64(at)/1e6, float64(size)/1e6, at*100/max(size, 1))
	if d > 0 && at > partial {
		s += fmt.Sprintf(", %.1f MB/s", float64(at-partial)/1e6/d.Seconds())
	}
	return s
}

// Rate says how long sending n bytes took and at what rate, for a
// finished transfer's detail: " in 1.204s, 55.7 MB/s", or "" for no time.
func Rate(n int64, d time.Duration) string {
	if d <= 0 || n <= 0 {
		return ""
	}
	return fmt.Sprintf(" in %s, %.1f MB/s", d.Round(time.Millisecond), float64(n)/1e6/d.Seconds())
}
