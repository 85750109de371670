package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
)

// TestReleaseStateMachine: the moves a release's node may make, and what
// its nodes' states make of the release.
func TestReleaseStateMachine(t *testing.T) {
	ok := map[[2]config.NodeState]bool{
		{config.NodePending, config.NodeApplying}:      true,
		{config.NodePending, config.NodeCancelled}:     true,
		{config.NodePending, config.NodeUnchanged}:     true,
		{config.NodeApplying, config.NodeApplied}:      true,
		{config.NodeApplying, config.NodeUnchanged}:    true,
		{config.NodeApplying, config.NodeRestored}:     true,
		{config.NodeApplying, config.NodeFailed}:       true,
		{config.NodeApplying, config.NodeInterrupted}:  true,
		{config.NodeInterrupted, config.NodeApplied}:   true,
		{config.NodeInterrupted, config.NodeUnchanged}: true,
		{config.NodeInterrupted, config.NodeRestored}:  true,
		{config.NodeInterrupted, config.NodeFailed}:    true,
	}
	all := []config.NodeState{config.NodePending, config.NodeApplying, config.NodeApplied, config.NodeUnchanged, config.NodeRestored,
		config.NodeFailed, config.NodeInterrupted, config.NodeCancelled}
	for _, from := range all {
		for _, to := range all {
			if got := config.CanMove(from, to); got != ok[[2]config.NodeState{from, to}] {
				t.Errorf("CanMove(%s, %s) = %v", from, to, got)
			}
		}
	}
	for _, tc := range []struct {
		states []config.NodeState
		want   config.ReleaseState
	}{
		{[]config.NodeState{config.NodePending, config.NodePending}, config.ReleasePending},
		{[]config.NodeState{config.NodeApplying, config.NodePending}, config.ReleaseApplying},
		{[]config.NodeState{config.NodeApplied, config.NodePending}, config.ReleaseApplying},
		{[]config.NodeState{config.NodePending, config.NodeApplied}, config.ReleaseApplying},
		{[]config.NodeState{config.NodeApplied, config.NodeUnchanged}, config.ReleaseApplied},
		{[]config.NodeState{config.NodeApplied, config.NodeRestored, config.NodeCancelled}, config.ReleaseFailed},
		{[]config.NodeState{config.NodeInterrupted}, config.ReleaseFailed},
		{[]config.NodeState{config.NodeRestored, config.NodePending}, config.ReleaseApplying},
		{[]config.NodeState{config.NodeCancelled, config.NodeCancelled}, config.ReleaseFailed},
	} {
		if got := config.ReleaseStateOf(tc.states); got != tc.want {
			t.Errorf("ReleaseStateOf(%v) = %s, want %s", tc.states, got, tc.want)
		}
	}
}

// TestReleases: a release holds what was rendered, skips the nodes that
// have it, numbers itself, records how it went and what is on each node
// (syncNodeConfigStatus), refuses bad moves; a rollback restores the draft
// and the old text; a diff says what changed.
func TestReleases(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.ensemble(t, "c1", "10.0.0.1", "10.0.0.2", "10.0.0.3")
	layers, _ := f.svc.Files(ctx, c.ID)
	zoo := layers[0]
	ids3 := []ids.ID{nodes[0].ID, nodes[1].ID, nodes[2].ID}
	sync := func() []int {
		t.Helper()
		m, err := f.svc.SyncStatus(ctx, ids3)
		if err != nil {
			t.Fatal(err)
		}
		return []int{m[nodes[0].ID], m[nodes[1].ID], m[nodes[2].ID]}
	}
	if got := sync(); !slices.Equal(got, []int{config.SyncNeverApplied, config.SyncNeverApplied, config.SyncNeverApplied}) {
		t.Fatalf("sync before any release: %v", got)
	}

	// Release 1 of every node, applied everywhere.
	r1, rn1, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: zoo.ID, Kind: config.KindRollout, Title: "first", By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Number != 1 || len(rn1) != 3 || r1.State != config.ReleasePending || len(r1.Items) != 11 || !strings.Contains(string(rn1[1].Content), "server.3=") {
		t.Fatalf("release 1 %+v, nodes %d", r1, len(rn1))
	}
	for _, n := range nodes {
		if err := f.svc.Applying(ctx, r1.ID, n.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Settle(ctx, r1.ID, n.ID, config.NodeApplied, "healthy"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Settle(ctx, r1.ID, nodes[0].ID, config.NodeFailed, "twice"); err == nil {
		t.Fatal("a settled node moved again")
	}
	r1, _, _ = f.svc.Release(ctx, r1.ID)
	if r1.State != config.ReleaseApplied || r1.FinishedAt.IsZero() {
		t.Fatalf("release 1 after every node: %+v", r1)
	}
	if got := sync(); !slices.Equal(got, []int{config.SyncNeverApplied, config.SyncNeverApplied, config.SyncNeverApplied}) {
		t.Fatalf("sync with myid never applied: %v", got)
	}
	// An abandoned release (its job was refused) leaves nothing.
	ra, _, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: layers[1].ID, Kind: config.KindRollout})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.AbandonRelease(ctx, ra.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Release(ctx, ra.ID); !errors.Is(err, config.ErrReleaseNotFound) {
		t.Fatalf("abandoned release: %v", err)
	}
	// myid's first release, applied everywhere.
	rm, _, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: layers[1].ID, Kind: config.KindRollout})
	if err != nil || rm.Number != 1 {
		t.Fatalf("myid release %+v %v", rm, err)
	}
	for _, n := range nodes {
		f.svc.Applying(ctx, rm.ID, n.ID)
		f.svc.Settle(ctx, rm.ID, n.ID, config.NodeApplied, "")
	}
	if got := sync(); !slices.Equal(got, []int{0, 0, 0}) {
		t.Fatalf("sync after release 1: %v", got)
	}
	// Nothing changed: nothing to release.
	if _, _, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: zoo.ID, Kind: config.KindRollout}); !errors.Is(err, config.ErrNoChange) {
		t.Fatalf("an unchanged release: %v", err)
	}

	// A change on node 2 only: release 2 holds node 2.
	nf2, _ := f.zooCfgOf(t, nodes[1])
	items, _ := f.svc.AllNodeItems(ctx, nf2.ID)
	v := "99"
	if _, err := f.svc.UpdateNodeItem(ctx, items[1].ID, config.Change{Value: &v}); err != nil {
		t.Fatal(err)
	}
	if got := sync(); !slices.Equal(got, []int{0, config.SyncDiffers, 0}) {
		t.Fatalf("sync with node 2's draft changed: %v", got)
	}
	r2, rn2, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: zoo.ID, Kind: config.KindFlush})
	if err != nil || r2.Number != 2 || len(rn2) != 1 || rn2[0].NodeID != nodes[1].ID {
		t.Fatalf("release 2 %+v %v %v", r2, rn2, err)
	}
	// The apply is cut short: unknown, then the agent says it was restored.
	if err := f.svc.Applying(ctx, r2.ID, nodes[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Settle(ctx, r2.ID, nodes[1].ID, config.NodeInterrupted, "agent went away"); err != nil {
		t.Fatal(err)
	}
	if got := sync(); got[1] != config.SyncUnknown {
		t.Fatalf("sync after an interrupted apply: %v", got)
	}
	left, _ := f.svc.Interrupted(ctx, ids3)
	if len(left) != 1 || left[0].ReleaseID != r2.ID {
		t.Fatalf("interrupted %+v", left)
	}
	if _, err := f.svc.Settle(ctx, r2.ID, nodes[1].ID, config.NodeRestored, "unhealthy, put back"); err != nil {
		t.Fatal(err)
	}
	if r2, _, _ = f.svc.Release(ctx, r2.ID); r2.State != config.ReleaseFailed {
		t.Fatalf("release 2 %+v", r2)
	}
	// Restored: what is on node 2 is release 1's file, which its draft
	// differs from.
	if got := sync(); got[1] != config.SyncDiffers {
		t.Fatalf("sync after a restore: %v", got)
	}

	// A layer change released to all, node 3 cancelled (the rollout
	// stopped), then rolled back to release 1.
	layerItems, _ := f.svc.AllItems(ctx, zoo.ID)
	tick := "3000"
	if _, err := f.svc.UpdateItem(ctx, layerItems[0].ID, config.Change{Value: &tick}); err != nil {
		t.Fatal(err)
	}
	r3, rn3, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: zoo.ID, Kind: config.KindRollout, Comment: "tick"})
	if err != nil || len(rn3) != 3 {
		t.Fatalf("release 3: %v", err)
	}
	for _, n := range nodes[:2] {
		f.svc.Applying(ctx, r3.ID, n.ID)
		f.svc.Settle(ctx, r3.ID, n.ID, config.NodeApplied, "")
	}
	if r3, err = f.svc.FinishRelease(ctx, r3.ID, "stopped: node 2 failed"); err != nil || r3.State != config.ReleaseFailed || r3.Reason == "" {
		t.Fatalf("finished release 3 %+v %v", r3, err)
	}
	_, rn3, _ = f.svc.Release(ctx, r3.ID)
	if rn3[2].State != config.NodeCancelled || !strings.HasPrefix(rn3[2].Detail, "not applied: ") {
		t.Fatalf("node 3 of release 3 %+v", rn3[2])
	}

	rb, rnb, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: zoo.ID, Kind: config.KindRollback, RollbackTo: r1.ID})
	if err != nil {
		t.Fatal(err)
	}
	// Node 3 never got release 3: its file is release 1's already.
	if rb.Number != 4 || rb.RollbackOf != r1.ID || len(rnb) != 2 || string(rnb[0].Content) != string(rn1[0].Content) {
		t.Fatalf("rollback %+v %d nodes", rb, len(rnb))
	}
	if got, _ := f.svc.AllItems(ctx, zoo.ID); got[0].Value != "2000" {
		t.Fatalf("the layer's draft was not set back: %+v", got[0])
	}
	if it, _ := f.svc.NodeItem(ctx, items[1].ID); it.ValueSet || it.Value == "99" {
		t.Fatalf("node 2's override was not set back: %+v", it)
	}
	// A release of another file is refused.
	if _, _, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: layers[1].ID, Kind: config.KindRollback, RollbackTo: r1.ID}); !errors.Is(err, config.ErrOtherFile) {
		t.Fatalf("rollback to another file's release: %v", err)
	}
	if _, _, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: zoo.ID, Kind: config.KindRollback, RollbackTo: 12345}); !errors.Is(err, config.ErrReleaseNotFound) {
		t.Fatalf("rollback to nothing: %v", err)
	}

	// The diff of release 1 and 3: tickTime changed in the layer and on
	// every node; node 2's maxClientCnxns override is a node change.
	d, err := f.svc.Diff(ctx, r1.ID, r3.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Layer.Changed) != 1 || d.Layer.Changed[0].Key != "tickTime" || d.Layer.Changed[0].From != "2000" || d.Layer.Changed[0].To != "3000" ||
		len(d.Layer.Added)+len(d.Layer.Removed) != 0 || len(d.Nodes) != 3 {
		t.Fatalf("layer diff %+v", d)
	}
	if n := d.Nodes[1]; len(n.Items.Changed) != 2 || !strings.Contains(n.Lines, "-tickTime=2000\n+tickTime=3000\n") {
		t.Fatalf("node 2 diff %+v\n%s", n.Items, n.Lines)
	}
	if _, err := f.svc.Diff(ctx, r1.ID, 777, 0); !errors.Is(err, config.ErrReleaseNotFound) {
		t.Fatalf("diff with nothing: %v", err)
	}
	// Listing: newest first, per node.
	list, total, err := f.svc.Releases(ctx, zoo.ID, 0, paging.Page{Num: 1, Size: 10})
	if err != nil || total != 4 || list[0].Number != 4 {
		t.Fatalf("releases %d %v", total, err)
	}
	if _, total, _ := f.svc.Releases(ctx, zoo.ID, nodes[2].ID, paging.Page{Num: 1, Size: 10}); total != 2 {
		t.Fatalf("node 3's releases: %d", total)
	}
	_ = cluster.Coordinator
}
