package store

import (
	"path/filepath"
	"strings"
	"testing"
)

// The queries every agent's enrollment or connection runs must not scan
// the servers table: at 10,000 servers a scan per enrollment made the
// enrollment of a whole fleet quadratic.
func TestHotQueriesUseIndexes(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "admq.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []struct {
		name, sql, index string
		args             []any
	}{
		{"RetryServer", retryServerSQL, "servers_enroll_retry", []any{"tok", []byte{1}}},
	} {
		rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q.sql, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); !strings.Contains(p, "INDEX "+q.index) {
			t.Errorf("%s: plan %q, want it to use index %s", q.name, p, q.index)
		}
	}
}
