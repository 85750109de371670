package bootstrap

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Every command the manager runs on a host during a bootstrap is built in
// this file. Anything that comes from a request or the host reaches the
// shell only through quote.

// quote makes s one word for a POSIX shell: single quotes keep every byte
// but the single quote itself, which closes the quotes, adds an escaped
// quote and reopens them.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// platform is a host's OS and CPU architecture in Go's words.
type platform struct{ OS, Arch string }

func (p platform) String() string { return p.OS + "/" + p.Arch }

// detectScript prints "uname -s -m" on the first line and the account's uid
// on the second.
const detectScript = `uname -s -m && id -u`

// parseDetect reads detectScript's output.
func parseDetect(out string) (platform, bool, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		return platform{}, false, fmt.Errorf("%w: cannot read %q as uname and id output", ErrUnsupportedPlatform, truncate(out, 200))
	}
	p, err := parseUname(lines[0])
	if err != nil {
		return platform{}, false, err
	}
	return p, strings.TrimSpace(lines[1]) == "0", nil
}

// parseUname maps "uname -s -m" output to Go's GOOS/GOARCH names.
func parseUname(s string) (platform, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return platform{}, fmt.Errorf("%w: cannot read %q as uname -s -m output", ErrUnsupportedPlatform, truncate(s, 200))
	}
	var p platform
	switch f[0] {
	case "Linux":
		p.OS = "linux"
	default:
		return platform{}, fmt.Errorf("%w: OS %q (agents are built for Linux)", ErrUnsupportedPlatform, f[0])
	}
	switch f[1] {
	case "x86_64", "amd64":
		p.Arch = "amd64"
	case "aarch64", "arm64", "armv8l", "armv8b":
		p.Arch = "arm64"
	default:
		return platform{}, fmt.Errorf("%w: architecture %q (agents are built for x86_64 and aarch64)", ErrUnsupportedPlatform, f[1])
	}
	return p, nil
}

// agentFile is the name of the agent binary for p in the agent directory.
func agentFile(p platform) string { return "admq-agent-" + p.OS + "-" + p.Arch }

// layout is where a bootstrap puts things on the host.
type layout struct {
	AgentDir string // <programDir>/admq-agent
	Binary   string // <programDir>/admq-agent/admq-agent
	StateDir string // <dataDir>/admq-agent
	Service  string // service name
}

func newLayout(programDir, dataDir, service string) layout {
	agentDir := path.Join(programDir, "admq-agent")
	return layout{
		AgentDir: agentDir,
		Binary:   path.Join(agentDir, "admq-agent"),
		StateDir: path.Join(dataDir, "admq-agent"),
		Service:  service,
	}
}

// serviceFiles are where service managers keep a service's definition; one
// of them existing means the service is installed.
func serviceFiles(name string) []string {
	return []string{
		"/etc/systemd/system/" + name + ".service",
		"/lib/systemd/system/" + name + ".service",
		"/usr/lib/systemd/system/" + name + ".service",
		"/etc/init.d/" + name,
		"/etc/init/" + name + ".conf",
	}
}

// probeScript prints "yes" or "no" for whether the agent dir and the state
// dir exist, then each service file that exists.
func probeScript(l layout) string {
	var b strings.Builder
	for _, p := range []string{l.AgentDir, l.StateDir} {
		fmt.Fprintf(&b, "if [ -e %[1]s ] || [ -L %[1]s ]; then echo yes; else echo no; fi\n", quote(p))
	}
	for _, f := range serviceFiles(l.Service) {
		fmt.Fprintf(&b, "if [ -e %[1]s ]; then echo %[1]s; fi\n", quote(f))
	}
	b.WriteString("true\n")
	return b.String()
}

// probeResult is what probeScript found.
type probeResult struct {
	AgentDirExisted bool
	StateDirExisted bool
	ServiceFiles    []string
}

func parseProbe(out string) (probeResult, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !isYesNo(lines[0]) || !isYesNo(lines[1]) {
		return probeResult{}, fmt.Errorf("cannot read host inspection output %q", truncate(out, 200))
	}
	r := probeResult{AgentDirExisted: lines[0] == "yes", StateDirExisted: lines[1] == "yes"}
	for _, l := range lines[2:] {
		if l = strings.TrimSpace(l); l != "" {
			r.ServiceFiles = append(r.ServiceFiles, l)
		}
	}
	return r, nil
}

func isYesNo(s string) bool { return s == "yes" || s == "no" }

// uploadScript reads the agent binary from stdin into a temporary file next
// to its destination, checks its sha256, and moves it into place; a failure
// removes the temporary file.
func uploadScript(l layout, sha256hex string) string {
	return strings.Join([]string{
		"set -e",
		"umask 022",
		"mkdir -p -- " + quote(l.AgentDir),
		"t=$(mktemp " + quote(l.AgentDir+"/.admq-agent.upload.") + "XXXXXX)",
		`trap 'rm -f -- "$t"' EXIT`,
		`cat > "$t"`,
		`sum=$(sha256sum < "$t")`,
		`sum=${sum%% *}`,
		`if [ "$sum" != ` + quote(sha256hex) + ` ]; then echo "uploaded agent binary is damaged: sha256 $sum, want ` + sha256hex + `" >&2; exit 1; fi`,
		`chmod 0755 "$t"`,
		`mv -f -- "$t" ` + quote(l.Binary),
		"trap - EXIT",
	}, "\n")
}

// stateDirScript makes the agent's state directory, private to root.
func stateDirScript(l layout) string {
	return "set -e\numask 077\nmkdir -p -- " + quote(l.StateDir) + "\nchmod 0700 -- " + quote(l.StateDir)
}

// installArgs are what admq-agent install is told.
type installArgs struct {
	Manager     string // tunnel address host:port
	AdvertiseIP string
}

// installScript installs and starts the agent service. The join token is
// the script's first line of stdin, handed over in the environment
// (ADMQ_JOIN_TOKEN), so it is on no command line that ps would show. The
// command's output goes through a file, so that a daemon that keeps its
// stdout open cannot hold the SSH session open; all of it is reported on
// stderr.
func installScript(l layout, a installArgs) string {
	cmd := strings.Join([]string{
		quote(l.Binary), "install",
		"--manager", quote(a.Manager),
		"--state-dir", quote(l.StateDir),
		"--service-name", quote(l.Service),
		"--advertise-ip", quote(a.AdvertiseIP),
	}, " ")
	return "IFS= read -r ADMQ_JOIN_TOKEN || { echo 'no join token on stdin' >&2; exit 1; }\n" +
		"export ADMQ_JOIN_TOKEN\n" + outputThroughFile(cmd)
}

// uninstallScript stops and removes the service and the identity and join
// token it may have written to the state dir.
func uninstallScript(l layout) string {
	return outputThroughFile(quote(l.Binary) + " uninstall --service-name " + quote(l.Service) +
		" --state-dir " + quote(l.StateDir) + " --purge")
}

func outputThroughFile(cmd string) string {
	return strings.Join([]string{
		`o=$(mktemp)`,
		cmd + ` </dev/null >"$o" 2>&1`,
		`rc=$?`,
		`cat "$o" >&2`,
		`rm -f -- "$o"`,
		`exit $rc`,
	}, "\n")
}

// removeScript deletes what a failed bootstrap put on the host: the
// directories it created, or only its files in directories that were there.
func removeScript(l layout, p probeResult) string {
	var cmds []string
	if p.AgentDirExisted {
		cmds = append(cmds, "rm -f -- "+quote(l.Binary))
	} else {
		cmds = append(cmds, "rm -rf -- "+quote(l.AgentDir))
	}
	if p.StateDirExisted {
		cmds = append(cmds, "rm -f -- "+quote(path.Join(l.StateDir, "join-token")))
	} else {
		cmds = append(cmds, "rm -rf -- "+quote(l.StateDir))
	}
	return strings.Join(cmds, " && ")
}

// Service names: what systemd and SysV init accept and a shell word needs
// no quoting for (it is quoted anyway).
var serviceNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// expandServiceName fills the {managerIp} placeholder of a service name
// template with the address, '.' and ':' turned into '-'.
func expandServiceName(template, ip string) (string, error) {
	name := strings.ReplaceAll(template, "{managerIp}", strings.NewReplacer(".", "-", ":", "-").Replace(ip))
	if !serviceNameRe.MatchString(name) {
		return "", fmt.Errorf("agent service name %q (from %q) is not a valid service name: want 1-64 of A-Z a-z 0-9 _ . @ -", name, template)
	}
	return name, nil
}

// redact masks each secret in s.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "******")
		}
	}
	return s
}

// truncate keeps at most n bytes of s, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// tail keeps the last n bytes of s, on a rune boundary.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && s[i]&0xC0 == 0x80 {
		i++
	}
	return "…" + s[i:]
}
