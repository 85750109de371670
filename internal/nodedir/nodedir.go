// Package nodedir says which directories may be a node's program or data
// dir. The manager checks it when a cluster or node is created, the agent
// again when it deploys and when it removes: a node's dirs are deleted
// recursively when its cluster goes, so none of them may be a system
// directory, a home dir, or a directory another program keeps its state in.
//
// The rules, for an absolute, clean path:
//   - "/" and everything under /etc, /usr, /proc, /sys, /dev, /boot, /run,
//     /bin, /sbin, /lib, /lib32, /lib64, /libx32, /root, /efi, /snap,
//     /var/run and /var/lock, and the package managers' and systemd's
//     state (/var/lib/dpkg, /var/lib/apt, /var/lib/rpm, /var/lib/systemd)
//     are refused;
//   - top-level dirs that hold others' files (/var, /var/lib, /var/log,
//     /var/cache, /var/spool, /var/tmp, /var/opt, /var/local, /var/mail,
//     /tmp, /home, /opt, /srv, /mnt, /media) are refused themselves, while
//     a dir inside them is fine;
//   - a home dir (/home/NAME, and on the agent's host every home dir
//     /etc/passwd names) is refused itself.
//
// Protected dirs (the agent's state dir, the manager's data dir) are
// checked with Overlaps: a node dir may neither be one, lie inside one,
// nor contain one.
package nodedir

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// ManagerLockName is the file a running manager keeps locked in its data
// dir. An agent refuses to remove a tree holding a file of this name: it
// is a manager's data dir, even when the agent was not told where that is.
const ManagerLockName = ".admq-manager.lock"

// AgentLockName is the file a running agent keeps locked in its state dir,
// so that two agents never share one identity and one record of nodes. An
// agent refuses to remove a tree holding a file of this name: it is an
// agent's state dir, maybe another agent's on the same host.
const AgentLockName = ".admq-agent.lock"

// refusedTrees are refused with everything under them.
var refusedTrees = []string{
	"/etc", "/usr", "/proc", "/sys", "/dev", "/boot", "/run", "/bin", "/sbin",
	"/lib", "/lib32", "/lib64", "/libx32", "/root", "/efi", "/snap",
	"/var/run", "/var/lock",
	"/var/lib/dpkg", "/var/lib/apt", "/var/lib/rpm", "/var/lib/systemd",
}

// refusedDirs are refused themselves; a dir inside them may be a node's.
var refusedDirs = []string{
	"/", "/var", "/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/tmp", "/var/opt",
	"/var/local", "/var/mail", "/tmp", "/home", "/opt", "/srv", "/mnt", "/media",
}

// Check returns nil when p, an absolute and clean path, may be a node's
// dir; otherwise an error saying why not (the path and the rule).
func Check(p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("%s: want an absolute, clean path", p)
	}
	for _, t := range refusedTrees {
		if p == t || Within(t, p) {
			return fmt.Errorf("%s is a system directory (%s and everything under it)", p, t)
		}
	}
	for _, d := range refusedDirs {
		if p == d {
			return fmt.Errorf("%s is a system directory (a dir inside it may be used)", p)
		}
	}
	if filepath.Dir(p) == "/home" {
		return fmt.Errorf("%s is a home directory (a dir inside it may be used)", p)
	}
	return nil
}

// CheckHomes refuses p when it is one of homes (see PasswdHomes).
func CheckHomes(p string, homes []string) error {
	for _, h := range homes {
		if p == h && h != "/" {
			return fmt.Errorf("%s is a user's home directory (a dir inside it may be used)", p)
		}
	}
	return nil
}

// CheckProtected refuses p when it overlaps one of protected, each named
// by what it is ("the agent's state dir").
func CheckProtected(p string, protected map[string]string) error {
	for dir, what := range protected {
		if dir != "" && Overlaps(p, dir) {
			return fmt.Errorf("%s overlaps %s %s", p, what, dir)
		}
	}
	return nil
}

// Within reports whether p lies strictly inside dir; both absolute and clean.
func Within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// Overlaps reports whether a and b are the same dir or one contains the
// other.
func Overlaps(a, b string) bool {
	return a == b || Within(a, b) || Within(b, a)
}

// PasswdHomes returns the absolute, clean home dirs of an /etc/passwd
// file's entries.
func PasswdHomes(r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 7 {
			continue
		}
		if h := f[5]; filepath.IsAbs(h) {
			out = append(out, filepath.Clean(h))
		}
	}
	return out
}
