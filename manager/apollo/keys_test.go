package apollo

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{encodeKey("a/b"), "a/b"},
		{"YS9i", "a/b"},
		{"YS9iYw==", "a/bc"},
		{"YS9iYw", "a/bc"}, // padding is optional, as Java's decoder has it
		{encodeKey(`dir\file.key`), `dir\file.key`},
		{encodeKey("日志/级别"), "日志/级别"},
	} {
		got, err := decodeKey(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("decodeKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "!!!", "YS9i*", "YS-i", "YS_i", "Y", "YS9iYw=", "/w==", "====", "YS9i\n"} {
		if got, err := decodeKey(bad); err == nil {
			t.Errorf("decodeKey(%q) = %q, want an error", bad, got)
		} else if ae, ok := err.(*apiError); !ok || ae.status != 400 {
			t.Errorf("decodeKey(%q): %v, want a 400", bad, err)
		}
	}
}

// FuzzDecodeKey: any input is refused with a 400 or decodes to UTF-8 text
// that encodes back to the same bytes; every key round-trips.
func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{"YS9i", "YS9iYw==", "YS9iYw", "5pel5b+XL+e6p+WIqw==", "/w==", "", "===", "a+b/c="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := decodeKey(s)
		if err != nil {
			if ae, ok := err.(*apiError); !ok || ae.status != 400 {
				t.Fatalf("decodeKey(%q): %v, want a 400", s, err)
			}
		} else {
			if !utf8.ValidString(key) || key == "" {
				t.Fatalf("decodeKey(%q) = %q: not UTF-8 text", s, key)
			}
			if enc := encodeKey(key); strings.TrimRight(enc, "=") != strings.TrimRight(s, "=") {
				t.Fatalf("decodeKey(%q) = %q, which encodes as %q", s, key, enc)
			}
		}
		if utf8.ValidString(s) && s != "" {
			if back, err := decodeKey(encodeKey(s)); err != nil || back != s {
				t.Fatalf("key %q does not round-trip: %q, %v", s, back, err)
			}
		}
	})
}
