package deploy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/pkg"
)

func TestTransferError(t *testing.T) {
	n := cluster.Node{ManagerIP: "10.0.0.7"}
	p := pkg.Package{FileName: "admq-big-V1.0-x86.tar"}
	lost := fmt.Errorf("push package on agent 42: %w: error reading from server: EOF", fleet.ErrAgentNotOnline)
	noSpace := fmt.Errorf("push package on agent 42: %w: needs 9 more bytes", ErrAgentNoSpace)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"connection lost", lost, "the agent on 10.0.0.7 went offline during the transfer of admq-big-V1.0-x86.tar (connection lost); " +
			"it keeps what it received: deploy again once it is back online and the transfer resumes " +
			"(push package on agent 42: server's agent is not connected: error reading from server: EOF)"},
		{"other errors unchanged", noSpace, noSpace.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := transferError(n, p, tc.err)
			if got.Error() != tc.want {
				t.Errorf("transferError:\n got %s\nwant %s", got, tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("transferError(%v) does not wrap its cause", tc.err)
			}
		})
	}
}

// TestReadProgressReportsTheFurthestRead: a reread of earlier bytes (a
// retried chunk) does not move the progress back.
func TestReadProgressReportsTheFurthestRead(t *testing.T) {
	var got []int64
	rp := &readProgress{r: strings.NewReader(strings.Repeat("x", 100)), report: func(at int64) { got = append(got, at) }}
	buf := make([]byte, 40)
	for _, off := range []int64{0, 40, 0, 80} {
		if _, err := rp.ReadAt(buf, off); err != nil && off != 80 {
			t.Fatal(err)
		}
	}
	if want := []int64{40, 80, 100}; !slices.Equal(got, want) {
		t.Errorf("reported %v, want %v", got, want)
	}
}
