package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager/audit"
	"github.com/admq/admq-manager/manager/paging"
)

func TestAudit(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	var want []audit.Entry
	for i := range 5 {
		e := audit.Entry{
			ID: nextID(), At: base.Add(time.Duration(i) * time.Second), Username: "alice", Role: "admin",
			Method: "DELETE", Path: fmt.Sprintf("/api/v1/servers/%d", i), RemoteIP: "127.0.0.1",
			Status: 200, Code: 0, Detail: "server " + fmt.Sprint(i),
		}
		if err := db.AppendAudit(ctx, &e); err != nil {
			t.Fatal(err)
		}
		want = append([]audit.Entry{e}, want...) // newest first
	}

	cases := []struct {
		page paging.Page
		want []audit.Entry
	}{
		{paging.Page{Num: 1, Size: 2}, want[:2]},
		{paging.Page{Num: 3, Size: 2}, want[4:]},
		{paging.Page{Num: 4, Size: 2}, nil},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("page %d", tc.page.Num), func(t *testing.T) {
			list, total, err := db.Audit(ctx, audit.Filter{}, tc.page)
			if err != nil {
				t.Fatal(err)
			}
			if total != 5 {
				t.Errorf("total = %d, want 5", total)
			}
			if len(list) != len(tc.want) {
				t.Fatalf("got %d entries, want %d", len(list), len(tc.want))
			}
			for i := range list {
				got, w := list[i], tc.want[i]
				if !got.At.Equal(w.At) {
					t.Errorf("entry %d: At = %v, want %v", i, got.At, w.At)
				}
				got.At = w.At
				if got != w {
					t.Errorf("entry %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}
