// Package packaging_test checks the release files that packaging/dist (a
// module of its own) and `make dist` make.
package packaging_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func root(t testing.TB) string {
	t.Helper()
	r, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// command runs name in dir and returns its output, failing the test on an
// error.
func command(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestPack packs stand-in binaries as `make dist` would and checks every
// file it makes. Fast enough to run always; TestDist builds the real thing.
func TestPack(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	dist := t.TempDir()
	for _, b := range []string{"admq-manager-linux-amd64", "admq-agent-linux-amd64", "admq-agent-linux-arm64"} {
		if err := os.WriteFile(filepath.Join(dist, b), []byte("#!/bin/sh\necho "+b+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const version = "v1.2.3-4-gabcdef0-dirty" // as git describe prints it
	t.Run("unit tests of packaging/dist", func(t *testing.T) {
		command(t, filepath.Join(root(t), "packaging", "dist"), "go", "test", "-count=1", ".")
	})
	command(t, filepath.Join(root(t), "packaging", "dist"), "go", "run", ".",
		"-root", root(t), "-dist", dist, "-version", version, "-arches", "amd64", "-agent-arches", "amd64 arm64")

	checkTarball(t, filepath.Join(dist, "admq-manager-"+version+"-linux-amd64.tar.gz"), []string{"amd64", "arm64"})
	checkDebs(t, dist, "1.2.3+4.gabcdef0.dirty", "amd64", []string{"amd64", "arm64"})
	checkRPMs(t, dist, "x86_64")
}

// TestDist runs `make dist` for amd64 alone into a temp dir: it cross-builds
// the real binaries (a minute or two on a cold build cache), so it runs
// only with ADMQ_TEST_DIST=1.
func TestDist(t *testing.T) {
	if os.Getenv("ADMQ_TEST_DIST") != "1" {
		t.Skip("set ADMQ_TEST_DIST=1 to run make dist (builds release binaries)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make command")
	}
	dist := t.TempDir()
	const version = "v0.0.0-disttest"
	command(t, root(t), "make", "dist", "ARCHES=amd64", "AGENT_ARCHES=amd64", "DIST="+dist, "VERSION="+version)
	for _, b := range []string{"admq-manager-linux-amd64", "admq-agent-linux-amd64"} {
		var out string
		if strings.Contains(b, "manager") {
			out = command(t, dist, filepath.Join(dist, b), "--version")
		} else {
			out = command(t, dist, filepath.Join(dist, b), "version")
		}
		if strings.TrimSpace(out) != version {
			t.Errorf("%s reports version %q; want %q", b, out, version)
		}
	}
	checkTarball(t, filepath.Join(dist, "admq-manager-"+version+"-linux-amd64.tar.gz"), []string{"amd64"})
	checkDebs(t, dist, "0.0.0~disttest", "amd64", []string{"amd64"})
	checkRPMs(t, dist, "x86_64")
}

func checkTarball(t *testing.T, path string, agentArches []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	top := strings.TrimSuffix(filepath.Base(path), ".tar.gz") + "/"
	want := map[string]int64{
		top: 0o755, top + "agents/": 0o755, top + "admq-manager": 0o755,
		top + "README.md": 0o644, top + "admq-manager.service": 0o644,
	}
	for _, a := range agentArches {
		want[top+"agents/admq-agent-linux-"+a] = 0o755
	}
	got := map[string]int64{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h.Mode
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owner %d:%d; want root", h.Name, h.Uid, h.Gid)
		}
		if h.Name == top+"admq-manager.service" {
			b, _ := io.ReadAll(tr)
			if unit, _ := os.ReadFile(filepath.Join(root(t), "packaging", "systemd", "admq-manager.service")); !bytes.Equal(b, unit) {
				t.Error("the tarball's admq-manager.service is not packaging/systemd/admq-manager.service")
			}
		}
	}
	if listing(got) != listing(want) {
		t.Errorf("%s holds\n%s\nwant\n%s", filepath.Base(path), listing(got), listing(want))
	}
}

// listing is "mode name" lines, sorted by name.
func listing(m map[string]int64) string {
	var lines []string
	for name, mode := range m {
		lines = append(lines, fmt.Sprintf("%04o %s", mode, name))
	}
	slices.SortFunc(lines, func(a, b string) int { return strings.Compare(a[5:], b[5:]) })
	return strings.Join(lines, "\n")
}

// checkDebs inspects both .deb files with dpkg-deb and compares what they
// unpack to with the repository's files.
func checkDebs(t *testing.T, dist, version, arch string, agentArches []string) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Log("dpkg-deb not found: .deb contents not checked")
		return
	}
	type file struct {
		path, mode, src string // src: the repository file it must equal
	}
	pkgs := map[string][]file{
		"admq-manager": {
			{"./usr/bin/admq-manager", "-rwxr-xr-x", ""},
			{"./lib/systemd/system/admq-manager.service", "-rw-r--r--", "packaging/systemd/admq-manager.service"},
			{"./etc/default/admq-manager", "-rw-------", "packaging/etc/default/admq-manager"},
		},
		"admq-agent": {
			{"./usr/bin/admq-agent", "-rwxr-xr-x", ""},
			{"./lib/systemd/system/admq-agent.service", "-rw-r--r--", "packaging/systemd/admq-agent.service"},
			{"./etc/default/admq-agent", "-rw-r--r--", "packaging/etc/default/admq-agent"},
			{"./var/lib/admq-agent/", "drwx------", ""},
		},
	}
	for _, a := range agentArches {
		pkgs["admq-manager"] = append(pkgs["admq-manager"], file{"./usr/lib/admq-manager/agents/admq-agent-linux-" + a, "-rwxr-xr-x", ""})
	}
	for name, files := range pkgs {
		t.Run(name+".deb", func(t *testing.T) {
			deb := filepath.Join(dist, name+"_"+version+"_"+arch+".deb")
			info := command(t, dist, "dpkg-deb", "--info", deb)
			for _, want := range []string{"Package: " + name, "Version: " + version, "Architecture: " + arch, "postinst", "prerm", "postrm"} {
				if !strings.Contains(info, want) {
					t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
				}
			}
			if conf := command(t, dist, "dpkg-deb", "--info", deb, "conffiles"); strings.TrimSpace(conf) != "/etc/default/"+name {
				t.Errorf("conffiles = %q; want /etc/default/%s", conf, name)
			}
			contents := command(t, dist, "dpkg-deb", "--contents", deb)
			modes := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(contents), "\n") {
				fields := strings.Fields(l)
				modes[fields[len(fields)-1]] = fields[0]
				if fields[1] != "root/root" {
					t.Errorf("%s: owner %s; want root/root", fields[len(fields)-1], fields[1])
				}
			}
			x := t.TempDir()
			command(t, dist, "dpkg-deb", "--extract", deb, x)
			for _, f := range files {
				if modes[f.path] != f.mode {
					t.Errorf("%s: mode %q; want %q\n%s", f.path, modes[f.path], f.mode, contents)
				}
				if f.src == "" {
					continue
				}
				got, err := os.ReadFile(filepath.Join(x, f.path))
				if err != nil {
					t.Fatal(err)
				}
				if want, _ := os.ReadFile(filepath.Join(root(t), f.src)); !bytes.Equal(got, want) {
					t.Errorf("%s is not %s", f.path, f.src)
				}
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				ctl := t.TempDir()
				command(t, dist, "dpkg-deb", "--control", deb, ctl)
				command(t, ctl, "sh", "-n", filepath.Join(ctl, s))
			}
		})
	}
}

// checkRPMs checks the .rpm files' lead, and their file list where the rpm
// command exists (it is not on Debian by default).
func checkRPMs(t *testing.T, dist, arch string) {
	t.Helper()
	for _, name := range []string{"admq-manager", "admq-agent"} {
		matches, _ := filepath.Glob(filepath.Join(dist, name+"-[0-9]*."+arch+".rpm"))
		if len(matches) != 1 {
			t.Errorf("%s rpm for %s: found %v", name, arch, matches)
			continue
		}
		b, err := os.ReadFile(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0xed, 0xab, 0xee, 0xdb}) {
			t.Errorf("%s: not an rpm file", matches[0])
		}
		if _, err := exec.LookPath("rpm"); err != nil {
			continue
		}
		list := command(t, dist, "rpm", "-qlp", matches[0])
		for _, want := range []string{"/usr/bin/" + name, "/usr/lib/systemd/system/" + name + ".service", "/etc/default/" + name} {
			if !slices.Contains(strings.Fields(list), want) {
				t.Errorf("%s lacks %s:\n%s", filepath.Base(matches[0]), want, list)
			}
		}
	}
}
