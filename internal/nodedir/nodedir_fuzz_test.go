package nodedir

import (
	"path/filepath"
	"testing"
)

// FuzzCheck: a path Check accepts is absolute, clean, not "/", not in a
// refused tree, not a refused dir itself and not directly under /home;
// Overlaps is symmetric and agrees with Within.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"/opt/admq", "/usr/lib", "/etc", "/", "/home/a", "/var/lib/x", "/tmp", "//etc", "/usr/../etc", "/lib64x", "relative"} {
		f.Add(s, "/opt")
	}
	f.Fuzz(func(t *testing.T, p, q string) {
		if Overlaps(p, q) != Overlaps(q, p) {
			t.Fatalf("Overlaps(%q, %q) is not symmetric", p, q)
		}
		if Within(p, q) && Within(q, p) {
			t.Fatalf("%q and %q are each inside the other", p, q)
		}
		if Check(p) != nil {
			return
		}
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || filepath.Dir(p) == "/home" {
			t.Fatalf("Check accepted %q", p)
		}
		for _, r := range refusedTrees {
			if p == r || Within(r, p) {
				t.Fatalf("Check accepted %q, inside %s", p, r)
			}
		}
		for _, r := range refusedDirs {
			if p == r {
				t.Fatalf("Check accepted %q", p)
			}
		}
	})
}
