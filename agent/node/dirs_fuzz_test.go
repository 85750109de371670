package node

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/admq/admq-manager/agent/supervisor"
	"github.com/admq/admq-manager/internal/nodedir"
)

// FuzzWritePath: whatever dirs and path a request names, a path WritePath
// accepts is clean, strictly inside the program or the data dir, not one
// of the agent's own files, and the dirs passed the policy.
func FuzzWritePath(f *testing.F) {
	state := f.TempDir()
	sup, err := supervisor.New(state, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(sup.Close)
	m, err := New(state, sup, nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][3]string{
		{"/opt/admq/n1", "/data/n1", "conf/zoo.cfg"},
		{"/opt/admq/n1", "/data/n1", "/data/n1/myid"},
		{"/opt/admq/n1", "/data/n1", "../n2/x"},
		{"/opt/admq/n1", "/data/n1", "/data/n1/../../etc/passwd"},
		{"/opt/admq/n1", "/data/n1", ".admq-node"},
		{"/opt/admq/n1", "/opt/admq/n1/data", "x"},
		{"/usr/lib/x", "/data/n1", "x"},
		{"/opt/admq/n1", state, "x"},
		{"/opt/admq/n1", "/data/n1", "conf//./x"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, prog, data, p string) {
		d := Dirs{Program: prog, Data: data}
		got, err := m.WritePath(d, p)
		if err != nil {
			return
		}
		for _, dir := range []string{prog, data} {
			if err := nodedir.Check(dir); err != nil {
				t.Fatalf("WritePath(%+v, %q) accepted a refused dir: %v", d, p, err)
			}
			if nodedir.Overlaps(dir, state) {
				t.Fatalf("WritePath(%+v, %q) accepted a dir overlapping the state dir", d, p)
			}
		}
		if filepath.Clean(got) != got || !(nodedir.Within(prog, got) || nodedir.Within(data, got)) {
			t.Fatalf("WritePath(%+v, %q) = %q: not clean and strictly inside a node dir", d, p, got)
		}
		if slices.Contains(reservedNames, filepath.Base(got)) {
			t.Fatalf("WritePath(%+v, %q) = %q: the agent's own file", d, p, got)
		}
	})
}
