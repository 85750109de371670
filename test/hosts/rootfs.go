package hosts

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// CacheDir is where Rootfs keeps the machines' root file system, outside
// any checkout so that every suite and every run shares one.
const CacheDir = "/var/cache/admq-test"

// Suite is the Debian release machines run.
const Suite = "bookworm"

// rootfsPackages are what a machine has beyond Debian's minbase: systemd
// as PID 1 with D-Bus, OpenSSH's server (started at boot, as on a real
// server) and sudo for SSH bootstrap, and ps/kill/ip for looking around.
var rootfsPackages = []string{"systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "procps", "iproute2"}

// rootfsTrim is what a machine does not need, removed before packing.
var rootfsTrim = []string{
	"var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
	"usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*",
	"etc/ssh/ssh_host_*", // every machine gets keys of its own
}

// Rootfs returns the path of a zstd-compressed tarball of a Debian
// bookworm minbase root file system with rootfsPackages, making it first
// if dir does not hold it: debootstrap from the Debian mirror apt uses on
// this machine (never another), trimmed, packed. The file's name carries
// a hash of the package list, so a changed list makes a new one. Callers
// in other processes wait on a lock in dir while one makes it. logf, if
// not nil, is told when a build starts and how long it took.
func Rootfs(dir string, logf func(format string, args ...any)) (string, error) {
	sum := sha256.Sum256([]byte(Suite + " minbase " + strings.Join(rootfsPackages, ",")))
	path := filepath.Join(dir, fmt.Sprintf("debian-%s-systemd-%s.tar.zst", Suite, hex.EncodeToString(sum[:4])))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("rootfs cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("rootfs cache lock: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil // made by another process meanwhile
	}
	for _, bin := range []string{"debootstrap", "tar", "zstd"} {
		if _, err := exec.LookPath(bin); err != nil {
			return "", fmt.Errorf("making a root file system needs %s (Debian packages debootstrap, tar, zstd)", bin)
		}
	}
	mirror, err := AptMirror(Suite)
	if err != nil {
		return "", err
	}
	if logf != nil {
		logf("making the machines' root file system once: debootstrap --variant=minbase %s from %s into %s", Suite, mirror, path)
	}
	began := time.Now()
	build, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	defer os.RemoveAll(build)
	root := filepath.Join(build, "root")
	out, err := exec.Command("debootstrap", "--variant=minbase", "--include="+strings.Join(rootfsPackages, ","),
		Suite, root, mirror).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("debootstrap %s from %s: %v\n%s", Suite, mirror, err, tail(out, 2000))
	}
	for _, pat := range rootfsTrim {
		matches, _ := filepath.Glob(filepath.Join(root, pat))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return "", fmt.Errorf("rootfs: trim: %w", err)
			}
		}
	}
	tmp := path + ".tmp"
	if out, err := exec.Command("tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"-I", "zstd -T0 -10", "-cf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("pack rootfs: %v\n%s", err, tail(out, 2000))
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("rootfs: %w", err)
	}
	if logf != nil {
		fi, _ := os.Stat(path)
		logf("made %s (%.1f MB) in %v", path, float64(fi.Size())/1e6, time.Since(began).Round(100*time.Millisecond))
	}
	return path, nil
}

// AptMirror returns the URI of the Debian archive that apt's sources on
// this machine (/etc/apt/sources.list and sources.list.d, one-line and
// deb822 formats) use for suite, e.g. http://deb.debian.org/debian.
func AptMirror(suite string) (string, error) {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = deb822Mirror(string(b), suite)
		} else {
			uri = oneLineMirror(string(b), suite)
		}
		if uri != "" {
			return strings.TrimSuffix(uri, "/"), nil
		}
	}
	return "", fmt.Errorf("no apt source on this machine serves %s main (read %s)", suite, strings.Join(files, ", "))
}

// oneLineMirror reads "deb [options] URI suite component..." lines.
func oneLineMirror(text, suite string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 3 && f[1] == suite && slices.Contains(f[2:], "main") {
			return f[0]
		}
	}
	return ""
}

// deb822Mirror reads stanzas of Types/URIs/Suites/Components fields.
func deb822Mirror(text, suite string) string {
	for _, stanza := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		fields := map[string][]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.Fields(v)
			}
		}
		if slices.Contains(fields["enabled"], "no") || !slices.Contains(fields["types"], "deb") ||
			!slices.Contains(fields["suites"], suite) || !slices.Contains(fields["components"], "main") || len(fields["uris"]) == 0 {
			continue
		}
		return fields["uris"][0]
	}
	return ""
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
