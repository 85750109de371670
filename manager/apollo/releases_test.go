package apollo

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager/config"
)

func TestDiffConfigs(t *testing.T) {
	got := diffConfigs(map[string]string{"a": "1", "b": "2", "c": "3"}, map[string]string{"a": "1", "b": "20", "d": "4"})
	b, _ := json.Marshal(got)
	want := `[{"changeType":"MODIFIED","key":"b","newValue":"20","oldValue":"2"},{"changeType":"DELETED","key":"c","oldValue":"3"},{"changeType":"ADDED","key":"d","newValue":"4"}]`
	if string(b) != want {
		t.Fatalf("diff:\n%s\nwant\n%s", b, want)
	}
	if got := diffConfigs(map[string]string{}, map[string]string{}); got == nil || len(got) != 0 {
		t.Fatalf("no change: %v (want an empty list, not null)", got)
	}
}

// TestConvert: a release of the layer shows the layer's effective items; a
// flush of one node (recorded, or the console's) shows that node's.
func TestConvert(t *testing.T) {
	r := config.Release{ID: 7, FileID: 3, Component: "coordinator", FileName: "zoo.cfg", Kind: config.KindRollout,
		State: config.ReleaseApplied, CreatedAt: time.Unix(100, 0),
		Items: []config.Item{{Key: "a", Value: "1", Effective: true}, {Key: "off", Value: "x"}}}
	nodes := []config.ReleaseNode{
		{NodeID: 11, NodeDir: "coordinator-1", State: config.NodeApplied, Items: []config.NodeItem{{Key: "a", Value: "9", Effective: true}, {Key: "own", Value: "o", Effective: true}}},
		{NodeID: 12, NodeDir: "coordinator-2", State: config.NodeUnchanged},
	}
	rel := convert(r, nodes, "")
	if rel.cluster() != "default" || len(rel.Config) != 1 || rel.Config["a"] != "1" || len(rel.Nodes) != 2 {
		t.Fatalf("layer release: %+v", rel)
	}
	rel = convert(r, nodes, "coordinator-1")
	if rel.cluster() != "coordinator-1" || rel.Node != 11 || rel.Config["a"] != "9" || rel.Config["own"] != "o" {
		t.Fatalf("node release: %+v", rel)
	}
	r.Kind = config.KindFlush
	if rel := convert(r, nodes[:1], ""); rel.cluster() != "coordinator-1" {
		t.Fatalf("the console's flush of one node: cluster %s", rel.cluster())
	}
	h := historyDTO("mq1", "zoo.cfg", convert(r, nodes, ""), 5)
	b, _ := json.Marshal(h)
	for _, want := range []string{`"previousReleaseId":5`, `"operation":0`, `"isReleaseAbandoned":false`, `"state":"applied"`, `"configuration":[{"firstEntity":"a","secondEntity":"1"}]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("history %s lacks %s", b, want)
		}
	}
}
