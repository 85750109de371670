package hosts

import "testing"

func TestAptMirror(t *testing.T) {
	for _, c := range []struct {
		name, text, want string
		deb822           bool
	}{
		{"one-line", "# comment\ndeb-src http://src/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n", "http://mirror.example/debian", false},
		{"one-line, other suite first", "deb http://sec/debian-security bookworm-security main\ndeb http://m/debian bookworm main\n", "http://m/debian", false},
		{"one-line, no main", "deb http://m/debian bookworm contrib\n", "", false},
		{"deb822", "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n", "http://deb.debian.org/debian", true},
		{"deb822, disabled", "Types: deb\nEnabled: no\nURIs: http://a/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb deb-src\nURIs: http://b/debian\nSuites: bookworm\nComponents: main\n", "http://b/debian", true},
		{"deb822, source only", "Types: deb-src\nURIs: http://a/debian\nSuites: bookworm\nComponents: main\n", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := oneLineMirror(c.text, "bookworm")
			if c.deb822 {
				got = deb822Mirror(c.text, "bookworm")
			}
			if got != c.want {
				t.Errorf("mirror %q, want %q", got, c.want)
			}
		})
	}
}
