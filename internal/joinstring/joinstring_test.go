package joinstring

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	js := Format("abcdef.0123456789abcdef", pin)
	tok, p := Parse("  " + js + "\n")
	if tok != "abcdef.0123456789abcdef" || p != pin {
		t.Fatalf("got %q %q", tok, p)
	}
	tok, p = Parse("abcdef.0123456789abcdef")
	if tok != "abcdef.0123456789abcdef" || p != "" {
		t.Fatalf("bare token: %q %q", tok, p)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("abcdef.0123456789abcdef::sha256:00")
	f.Add("::")
	f.Add("a::b::c")
	f.Fuzz(func(t *testing.T, s string) {
		tok, pin := Parse(s)
		if strings.Contains(tok, "::") {
			t.Fatalf("token %q still holds the separator", tok)
		}
		if pin != "" && Format(tok, pin) != strings.TrimSpace(s) {
			t.Fatalf("%q does not round trip: %q %q", s, tok, pin)
		}
	})
}
