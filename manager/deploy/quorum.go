package deploy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/admq/admq-manager/internal/ids"
)

// ErrQuorum: a rollout would take more of an ensemble's nodes down than
// its quorum allows.
var ErrQuorum = errors.New("the ensemble's quorum would be lost")

// Member is a node of a quorum component's ensemble as the planner sees
// it before a batch.
type Member struct {
	ID      ids.ID
	Name    string
	Ordinal int
	// Up: its health check passes now.
	Up bool
	// Leader: its role probe says it leads (false when there is no probe
	// or it did not answer).
	Leader bool
}

// maxDown is how many of an ensemble of n nodes may be down at once with
// a quorum (a majority) left: f of 2f+1. A lone node keeps no quorum with
// anyone: it may be restarted (standalone, with its downtime).
func maxDown(n int) int {
	if n == 1 {
		return 1
	}
	return n - (n/2 + 1)
}

// nextBatch picks the next nodes to restart from remaining (in their
// order), at most size of them. Without an ensemble (a component that
// keeps no quorum) they are simply the first size. With one, the nodes of
// the ensemble down at any moment — those already down and those of the
// batch — stay within maxDown: nodes already down go first (restarting
// them costs nothing), then the others by ordinal, and the leader last,
// alone once only it is left. ErrQuorum, naming the nodes down, when not
// even one node can go.
func nextBatch(remaining []ids.ID, ensemble []Member, size int) ([]ids.ID, error) {
	if len(remaining) == 0 {
		return nil, nil
	}
	size = max(size, 1)
	if ensemble == nil {
		return remaining[:min(size, len(remaining))], nil
	}
	byID := map[ids.ID]Member{}
	down := 0
	var downNames []string
	for _, m := range ensemble {
		byID[m.ID] = m
		if !m.Up {
			down++
			downNames = append(downNames, m.Name)
		}
	}
	limit := maxDown(len(ensemble))
	var cands []Member
	for _, id := range remaining {
		m, ok := byID[id]
		if !ok { // not in the ensemble: no quorum of its own to keep
			m = Member{ID: id, Up: false}
		}
		cands = append(cands, m)
	}
	// Down first, then by ordinal, the leader last.
	rank := func(m Member) int {
		switch {
		case !m.Up:
			return 0
		case m.Leader:
			return 2
		}
		return 1
	}
	slices.SortStableFunc(cands, func(a, b Member) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return a.Ordinal - b.Ordinal
	})
	var batch []ids.ID
	for i, m := range cands {
		if len(batch) == size {
			break
		}
		if !m.Up {
			batch = append(batch, m.ID)
			continue
		}
		if m.Leader && i < len(cands)-1 {
			continue // followers remain: the leader waits for them
		}
		if m.Leader && len(batch) > 0 {
			break // the leader goes alone
		}
		if down+1 > limit {
			break
		}
		down++
		batch = append(batch, m.ID)
	}
	if len(batch) == 0 && len(downNames) == 0 {
		return nil, fmt.Errorf("%w: an ensemble of %d keeps its quorum only with every node up: none can be restarted without losing it",
			ErrQuorum, len(ensemble))
	}
	if len(batch) == 0 {
		return nil, fmt.Errorf("%w: an ensemble of %d keeps its quorum with at most %d down, and %d %s down (%s): restarting another would lose it",
			ErrQuorum, len(ensemble), limit, len(downNames), plural(len(downNames), "is", "are"), strings.Join(downNames, ", "))
	}
	return batch, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
