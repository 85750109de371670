package deploy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/admq/admq-manager/internal/ids"
)

// ensemble is n members, ids 1..n, all up; leader (0: none) leads.
func ensemble(n, leader int) []Member {
	var out []Member
	for i := 1; i <= n; i++ {
		out = append(out, Member{ID: ids.ID(i), Name: fmt.Sprintf("coordinator-%d", i), Ordinal: i, Up: true, Leader: i == leader})
	}
	return out
}

// planAll runs nextBatch to the end, every restarted node coming back up,
// and returns the batches.
func planAll(t *testing.T, members []Member, targets []ids.ID, size int) ([][]ids.ID, error) {
	t.Helper()
	remaining := slices.Clone(targets)
	var out [][]ids.ID
	for len(remaining) > 0 {
		batch, err := nextBatch(remaining, members, size)
		if err != nil {
			return out, err
		}
		down := 0
		for i := range members {
			if slices.Contains(batch, members[i].ID) || !members[i].Up {
				down++
			}
		}
		if limit := maxDown(len(members)); down > limit {
			t.Fatalf("batch %v takes %d of %d down, more than %d", batch, down, len(members), limit)
		}
		out = append(out, batch)
		remaining = slices.DeleteFunc(remaining, func(id ids.ID) bool { return slices.Contains(batch, id) })
		for i := range members {
			if slices.Contains(batch, members[i].ID) {
				members[i].Up = true
			}
		}
	}
	return out, nil
}

func all(n int) []ids.ID {
	var out []ids.ID
	for i := 1; i <= n; i++ {
		out = append(out, ids.ID(i))
	}
	return out
}

func TestNextBatchQuorum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []Member
		targets []ids.ID
		size    int
		want    string // batches as "1,2|3"
		err     string
	}{
		{name: "2f+1 = 1: a lone node is restarted", members: ensemble(1, 1), targets: all(1), size: 1, want: "1"},
		{name: "2f+1 = 3: one at a time, the leader last", members: ensemble(3, 1), targets: all(3), size: 1, want: "2|3|1"},
		{name: "2f+1 = 3: a larger batch is capped at f", members: ensemble(3, 2), targets: all(3), size: 3, want: "1|3|2"},
		{name: "2f+1 = 5: two at a time, the leader alone and last", members: ensemble(5, 3), targets: all(5), size: 2, want: "1,2|4,5|3"},
		{name: "2f+1 = 5: all at once asked, f at a time given", members: ensemble(5, 5), targets: all(5), size: 100, want: "1,2|3,4|5"},
		{name: "leader unknown: ordinal order", members: ensemble(3, 0), targets: all(3), size: 1, want: "1|2|3"},
		{name: "a subset of the ensemble", members: ensemble(5, 1), targets: []ids.ID{4, 1, 2}, size: 1, want: "2|4|1"},
		{name: "a node already down goes first, for free", members: down(ensemble(3, 1), 3), targets: all(3), size: 1, want: "3|2|1"},
		{name: "a node down outside the rollout: no other may go", members: down(ensemble(3, 1), 3), targets: []ids.ID{1, 2}, size: 1,
			err: "at most 1 down, and 1 is down (coordinator-3)"},
		{name: "2f+1 = 5, one down outside: one at a time", members: down(ensemble(5, 0), 5), targets: all(4), size: 2, want: "1|2|3|4"},
		{name: "an ensemble of two keeps no quorum with one down", members: ensemble(2, 0), targets: all(2), size: 1,
			err: "only with every node up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batches, err := planAll(t, tc.members, tc.targets, tc.size)
			if tc.err != "" {
				if !errors.Is(err, ErrQuorum) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want ErrQuorum with %q (batches %v)", err, tc.err, batches)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, b := range batches {
				var s []string
				for _, id := range b {
					s = append(s, id.String())
				}
				parts = append(parts, strings.Join(s, ","))
			}
			if got := strings.Join(parts, "|"); got != tc.want {
				t.Fatalf("batches %s, want %s", got, tc.want)
			}
		})
	}
}

func down(m []Member, id int) []Member {
	m[id-1].Up = false
	return m
}

func TestNextBatchWithoutQuorum(t *testing.T) {
	got, err := nextBatch(all(20), nil, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("default batch %v %v", got, err)
	}
	if got, _ := nextBatch(all(20), nil, 20); len(got) != 20 {
		t.Fatalf("all at once: %v", got)
	}
	if got, _ := nextBatch(all(3), nil, 7); len(got) != 3 {
		t.Fatalf("more than there are: %v", got)
	}
}
