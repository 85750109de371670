// Package chaos injects the faults production brings to admq-manager and
// checks what an operator would see afterwards: the manager killed with
// SIGKILL in the middle of a deployment and of a thousand concurrent API
// writes, agents killed in the middle of an unpack and of a config write,
// agent hosts cut off from the network for seconds and for a minute in
// the middle of an operation, the manager's disk filling up, slow and
// lossy links, and a soak with agents flapping that must not make the
// manager grow.
//
// Everything is real: the admq-manager and admq-agent binaries run as
// processes (so that SIGKILL is a real crash), agents on hosts made as
// network namespaces (test/hosts) whose links the tests take down and
// shape with tc netem, the manager's data dir on a small tmpfs where the
// disk must fill up. The suite needs root; it skips, saying so, without
// it, and under -short. Names carry the prefix "admqchaos", addresses come
// from 198.18.64.0/18, and runs take the lock test/e2e takes, so that the
// two suites never run at the same time.
//
// -soak sets the length of the soak (default 3m, as make test runs it;
// make soak runs 10m).
package chaos

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/hosts"
	"github.com/admq/admq-manager/test/testenv"
)

// prefix names everything the suite makes on the machine.
const prefix = "admqchaos"

// chaosNet is the suite's share of the machine's names and addresses.
var chaosNet = &hosts.Net{Prefix: prefix, Subnet: netip.MustParsePrefix("198.18.64.0/18")}

var (
	soak = flag.Duration("soak", 3*time.Minute, "how long the soak with flapping agents runs")

	// managerBin and agentBin are built once for the run.
	managerBin, agentBin string
	// skipReason, when set, is why every test skips.
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		skipReason = "chaos test: kills processes, makes network namespaces and mounts; skipped with -short"
		os.Exit(m.Run())
	}
	if skipReason = checkMachine(); skipReason != "" {
		os.Exit(m.Run())
	}
	// One run at a time, and never beside test/e2e: both make namespaces,
	// mounts and machines, and load the machine.
	unlock, err := hosts.Lock()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	chaosNet.RemoveStale()
	removeStaleMounts()
	dir, err := os.MkdirTemp("", prefix+"-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	code := 1
	managerBin, agentBin = filepath.Join(dir, "admq-manager"), filepath.Join(dir, "admq-agent")
	if err := testenv.Build(managerBin, "./cmd/admq-manager"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
	} else if err := testenv.Build(agentBin, "./cmd/admq-agent"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	unlock()
	os.Exit(code)
}

// chaosTest skips the test where the suite cannot run.
func chaosTest(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// checkMachine says why the suite cannot run here, or "".
func checkMachine() string {
	if os.Geteuid() != 0 {
		return "chaos test needs root (network namespaces, tc, tmpfs mounts)"
	}
	for _, bin := range []string{"ip", "nsenter", "nft", "tc", "mount", "umount"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Sprintf("chaos test needs %s (Debian packages iproute2 util-linux nftables mount)", bin)
		}
	}
	probe := fmt.Sprintf("%s-probe-%d", prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot make network namespaces here (ip netns add: %v: %s)", err, out)
	}
	exec.Command("ip", "netns", "del", probe).Run()
	return ""
}
