package main

import "testing"

func TestPackageVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.3.0-rc.1", "1.3.0~rc.1"},
		{"v1.2.3-4-gabcdef0", "1.2.3+4.gabcdef0"},
		{"v1.2.3-4-gabcdef0-dirty", "1.2.3+4.gabcdef0.dirty"},
		{"v1.3.0-rc.1-2-g0123abc", "1.3.0~rc.1+2.g0123abc"},
		{"v1.2.3-dirty", "1.2.3~dirty"},
		{"dev", "0.0.0+dev"},
		{"abcdef0-dirty", "0.0.0+abcdef0.dirty"},
	} {
		if got := packageVersion(tc.in); got != tc.want {
			t.Errorf("packageVersion(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
