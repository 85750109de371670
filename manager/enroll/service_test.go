package enroll

import (
	"testing"
)

func TestRandomStringAlphabet(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s, err := randomString(16)
		if err != nil {
			t.Fatal(err)
		}
		if !tokenSecretRe.MatchString(s) {
			t.Fatalf("%q does not match the secret format", s)
		}
		if seen[s] {
			t.Fatalf("%q drawn twice", s)
		}
		seen[s] = true
	}
}

func TestPickIP(t *testing.T) {
	for _, c := range []struct {
		adv, remote, want string
		ok                bool
	}{
		{"", "198.18.0.5", "198.18.0.5", true},
		{"198.18.0.9", "10.0.0.1", "198.18.0.9", true},
		{"::ffff:198.18.0.9", "", "198.18.0.9", true},
		{"0.0.0.0", "198.18.0.5", "", false},
		{"224.0.0.1", "198.18.0.5", "", false},
		{"not-an-ip", "198.18.0.5", "", false},
	} {
		got, err := pickIP(c.adv, c.remote)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("pickIP(%q, %q) = %q, %v", c.adv, c.remote, got, err)
		}
	}
}
