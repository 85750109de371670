package pkgname

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want Name
	}{
		{"admq-zookeeper-V3.8.4-x86.tar.gz", Name{"admq-zookeeper", "3.8.4", "x86", "tar.gz"}},
		{"zookeeper-V3.8.4-x86_64.tgz", Name{"zookeeper", "3.8.4", "x86", "tgz"}},
		{"nats-server-v2.10.22-amd64.tar", Name{"nats-server", "2.10.22", "x86", "tar"}},
		{"bookkeeper-V4.16.5-arm.tar.gz", Name{"bookkeeper", "4.16.5", "arm", "tar.gz"}},
		{"bookkeeper-V4.16.5-ARM64.tar.gz", Name{"bookkeeper", "4.16.5", "arm", "tar.gz"}},
		{"broker-V1-aarch64.tgz", Name{"broker", "1", "arm", "tgz"}},
		{"tools-V0.1.0+build.7-noarch.tar.gz", Name{"tools", "0.1.0+build.7", "all", "tar.gz"}},
		{"tools-V2024_01-all.tar", Name{"tools", "2024_01", "all", "tar"}},
		{"a-V1-all.tar", Name{"a", "1", "all", "tar"}},
		{"kafka-V2-bridge-V1.0-arm.tgz", Name{"kafka-V2-bridge", "1.0", "arm", "tgz"}},
		{"my_pkg.v2-V1.0rc1-x86.tar.gz", Name{"my_pkg.v2", "1.0rc1", "x86", "tar.gz"}},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != c.want {
				t.Fatalf("Parse = %+v, want %+v", got, c.want)
			}
			again, err := Parse(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip through %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		in, why string
	}{
		{"", "empty"},
		{"foo.tar.gz", "no -V<version>-<arch>"},
		{"foo-x86.tar.gz", "no -V<version> before"},
		{"foo-V1.0.tar.gz", `architecture "V1.0"`},
		{"foo-1.0-x86.tar.gz", `"1.0" before the architecture must be V`},
		{"foo-V-x86.tar.gz", `"V" before the architecture must be V`},
		{"foo-Vbeta-x86.tar.gz", "must be V and a version starting with a digit"},
		{"foo-V1.0-sparc.tar.gz", `architecture "sparc"`},
		{"foo-V1.0-x86.zip", "extension must be .tar.gz, .tgz or .tar"},
		{"foo-V1.0-x86.tar.bz2", "extension"},
		{"foo-V1.0-x86", "extension"},
		{"foo-V1.0-x86.TAR.GZ", "extension"},
		{"-V1.0-x86.tar.gz", "package name before -V is empty"},
		{"foo--bar-V1.0-x86.tar.gz", "must start with a letter or digit"},
		{"_foo-V1.0-x86.tar.gz", "must start with a letter or digit"},
		{".hidden-V1.0-x86.tar.gz", "must start with a letter or digit"},
		{"foo bar-V1.0-x86.tar.gz", "may hold only letters"},
		{"föö-V1.0-x86.tar.gz", "may hold only letters"},
		{"foo-V1.0~rc1-x86.tar.gz", "version may hold only"},
		{"../foo-V1.0-x86.tar.gz", "not a path"},
		{`C:\fakepath\foo-V1.0-x86.tar.gz`, "not a path"},
		{strings.Repeat("n", 65) + "-V1.0-x86.tar.gz", "longer than 64"},
		{"foo-V1" + strings.Repeat("0", 64) + "-x86.tar.gz", "version is longer"},
		{strings.Repeat("n", 300) + ".tar", "longer than 255"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := Parse(c.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", c.in, got)
			}
			if !errors.Is(err, ErrIllegal) {
				t.Errorf("error %v does not wrap ErrIllegal", err)
			}
			if !strings.Contains(err.Error(), c.why) {
				t.Errorf("error %q does not say %q", err, c.why)
			}
			if !strings.Contains(err.Error(), Format) {
				t.Errorf("error %q does not show the format", err)
			}
		})
	}
}

func TestGoArchAndFormat(t *testing.T) {
	for _, c := range []struct{ arch, goarch string }{{"x86", "amd64"}, {"arm", "arm64"}, {"all", ""}} {
		if got := (Name{Arch: c.arch}).GoArch(); got != c.goarch {
			t.Errorf("GoArch(%s) = %q, want %q", c.arch, got, c.goarch)
		}
	}
	for _, c := range []struct{ ext, format string }{{"tar.gz", "tar.gz"}, {"tgz", "tar.gz"}, {"tar", "tar"}} {
		if got := (Name{Ext: c.ext}).Format(); got != c.format {
			t.Errorf("Format(%s) = %q, want %q", c.ext, got, c.format)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"admq-zookeeper-V3.8.4-x86.tar.gz", "a-V1-all.tar", "foo.tar.gz", "x-v1-ARM64.tgz",
		"kafka-V2-bridge-V1.0-arm.tgz", "-V-.tar", "a-V1--x86.tar", "a-V1+-noarch.tar",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrIllegal) {
				t.Fatalf("error does not wrap ErrIllegal: %v", err)
			}
			return
		}
		again, err := Parse(n.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v but its String %q does not parse: %v", s, n, n.String(), err)
		}
		if again != n {
			t.Fatalf("round trip: %+v -> %q -> %+v", n, n.String(), again)
		}
		if n.Arch != ArchX86 && n.Arch != ArchARM && n.Arch != ArchAll {
			t.Fatalf("arch %q is not canonical", n.Arch)
		}
		if strings.ContainsAny(n.Name+n.Version, `/\ `) {
			t.Fatalf("unsafe characters accepted: %+v", n)
		}
	})
}
