package invalid

import "testing"

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name, v  string
		min, max int
		want     string // the error's text; "" for none
	}{
		{"optional and empty", "", 0, 8, ""},
		{"required and empty", "", 1, 8, "f: is required"},
		{"at the limit", "ärger ok", 1, 8, ""},
		{"too long, optional", "123456789", 0, 8, "f: must be at most 8 characters"},
		{"too long, required", "123456789", 1, 8, "f: must be 1 to 8 characters"},
		{"line break", "a\nb", 0, 8, "f: must not contain control characters"},
		{"C1 control", "a\u0085b", 0, 8, "f: must not contain control characters"},
		{"escape", "\x1b[2J", 0, 8, "f: must not contain control characters"},
		{"not UTF-8", "a\xffb", 0, 8, "f: is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Text("f", tc.v, tc.min, tc.max)
			got := ""
			if err != nil {
				got = err.Error()
				if e, ok := As(err); !ok || e.Field != "f" {
					t.Errorf("%v is not an *Error for field f", err)
				}
			}
			if got != tc.want {
				t.Errorf("Text(%q) = %q, want %q", tc.v, got, tc.want)
			}
		})
	}
}
