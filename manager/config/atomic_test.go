package config_test

import (
	"context"
	"errors"
	"testing"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/config"
)

// TestAtomically: edits of layer and node items made inside Atomically
// take effect together, or not at all when one fails.
func TestAtomically(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.ensemble(t, "c1", "10.0.0.1", "10.0.0.2")
	layers, _ := f.svc.Files(ctx, c.ID)
	zoo := layers[0]
	nf, _ := f.zooCfgOf(t, nodes[0])
	keys := func() map[string]string {
		items, _ := f.svc.AllItems(ctx, zoo.ID)
		m := map[string]string{}
		for _, it := range items {
			m[it.Key] = it.Value
		}
		nitems, _ := f.svc.AllNodeItems(ctx, nf.ID)
		for _, it := range nitems {
			m["node:"+it.Key] = it.Value
		}
		return m
	}
	itemID := func(key string) ids.ID {
		items, _ := f.svc.AllItems(ctx, zoo.ID)
		for _, it := range items {
			if it.Key == key {
				return it.ID
			}
		}
		t.Fatalf("no %s", key)
		return 0
	}
	v := func(s string) *string { return &s }
	before := keys()
	boom := errors.New("boom")
	err := f.svc.Atomically(ctx, func(ctx context.Context) error {
		if _, err := f.svc.AddItem(ctx, zoo.ID, config.NewItem{Key: "batch.new", Value: "1"}); err != nil {
			return err
		}
		if _, err := f.svc.UpdateItem(ctx, itemID("tickTime"), config.Change{Value: v("3000")}); err != nil {
			return err
		}
		if _, err := f.svc.AddNodeItem(ctx, []ids.ID{nf.ID}, config.NewItem{Key: "node.own", Value: "x"}); err != nil {
			return err
		}
		if err := f.svc.DeleteItem(ctx, itemID("syncLimit"), ""); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Atomically = %v, want boom", err)
	}
	if after := keys(); len(after) != len(before) || after["tickTime"] != before["tickTime"] || after["batch.new"] != "" || after["node:node.own"] != "" || after["syncLimit"] == "" {
		t.Fatalf("a failed batch changed the config: %v", after)
	}
	err = f.svc.Atomically(ctx, func(ctx context.Context) error {
		if _, err := f.svc.AddItem(ctx, zoo.ID, config.NewItem{Key: "batch.new", Value: "1"}); err != nil {
			return err
		}
		if _, err := f.svc.UpdateItem(ctx, itemID("tickTime"), config.Change{Value: v("3000")}); err != nil {
			return err
		}
		_, err := f.svc.AddNodeItem(ctx, []ids.ID{nf.ID}, config.NewItem{Key: "node.own", Value: "x"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := keys(); after["tickTime"] != "3000" || after["batch.new"] != "1" || after["node:batch.new"] != "1" || after["node:node.own"] != "x" {
		t.Fatalf("a good batch: %v", after)
	}
	// A store error inside rolls back too.
	err = f.svc.Atomically(ctx, func(ctx context.Context) error {
		if _, err := f.svc.UpdateItem(ctx, itemID("initLimit"), config.Change{Value: v("99")}); err != nil {
			return err
		}
		_, err := f.svc.AddItem(ctx, zoo.ID, config.NewItem{Key: "batch.new", Value: "2"})
		return err
	})
	if !errors.Is(err, config.ErrItemExists) {
		t.Fatalf("second batch.new: %v", err)
	}
	if after := keys(); after["initLimit"] != "10" {
		t.Fatalf("initLimit = %q after a refused batch", after["initLimit"])
	}
}
