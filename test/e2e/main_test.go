// Package e2e runs admq-manager against real hosts made as network
// namespaces on this machine: a real OpenSSH server for SSH bootstrap, the
// real admq-agent installed as a service, nftables closing inbound ports.
//
// The tests need root, `ip netns`, sshd, nft, sudo and the user tools; they
// skip, saying what is missing, where the machine cannot provide them, and
// under -short. Everything they create carries the prefix "admqe2e" and is
// removed by the test that made it, even on failure; leftovers of a crashed
// run are removed when the next run starts.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/hosts"
	"github.com/admq/admq-manager/test/testenv"
)

// prefix names everything the tests create on the machine.
const prefix = "admqe2e"

var (
	// agentDir holds admq-agent-linux-amd64, built once for the run.
	agentDir string
	// skipReason, when set, is why every host test skips.
	skipReason string
	// machineRootfs is the tarball systemd machines boot from; when it is
	// empty, machineSkip says why no machine can boot here, and agents
	// are tested only under System V init scripts on namespace hosts.
	machineRootfs, machineSkip string
	// machineProbe says how long the probe machine took to boot.
	machineProbe string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		skipReason = "end-to-end test: makes network namespaces, runs sshd and installs agents; skipped with -short"
		os.Exit(m.Run())
	}
	if skipReason = checkMachine(); skipReason != "" {
		os.Exit(m.Run())
	}
	// One run at a time: runs share /etc and the address range.
	unlock, err := hosts.Lock()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	removeStale()
	dir, err := os.MkdirTemp("", prefix+"-agents-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	agentDir = dir
	code := 1
	if err := buildAgent(filepath.Join(dir, "admq-agent-linux-amd64")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	} else {
		skipReason = checkAgentInstall(filepath.Join(dir, "admq-agent-linux-amd64"))
		if skipReason == "" {
			prepareMachines()
		}
		code = m.Run()
	}
	os.RemoveAll(dir)
	unlock()
	os.Exit(code)
}

// needHosts skips the test unless the machine can make hosts.
func needHosts(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// checkMachine says why namespace hosts cannot be made here, or "".
func checkMachine() string {
	if os.Geteuid() != 0 {
		return "end-to-end test needs root (network namespaces, users, services)"
	}
	for _, bin := range []string{"ip", "nsenter", "nft", "ssh-keygen", "sudo", "useradd", "userdel", "chpasswd", "mount", "umount"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Sprintf("end-to-end test needs %s (Debian packages: iproute2 util-linux nftables openssh-client sudo passwd mount)", bin)
		}
	}
	if _, err := os.Stat(sshdPath); err != nil {
		return fmt.Sprintf("end-to-end test needs %s (Debian package openssh-server): %v", sshdPath, err)
	}
	probe := fmt.Sprintf("%s-probe-%d", prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot make network namespaces here (ip netns add: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", probe).Run()
	return ""
}

// checkAgentInstall says why the agent cannot install itself as a
// service, or "".
func checkAgentInstall(bin string) string {
	out, _ := exec.Command(bin, "install", "--help").CombinedOutput()
	for _, flag := range []string{"-manager", "-token", "-state-dir", "-service-name"} {
		if !strings.Contains(string(out), flag) {
			return fmt.Sprintf("admq-agent install does not take %s yet (output: %.200s)", flag, out)
		}
	}
	return ""
}

// prepareMachines makes (once per machine, cached) the root file system of
// systemd machines and boots a probe machine; it sets machineRootfs, or
// machineSkip to why machines cannot run here.
func prepareMachines() {
	if why := hosts.CanBoot(); why != "" {
		machineSkip = why
		return
	}
	rootfs, err := hosts.Rootfs(hosts.CacheDir, func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
	})
	if err != nil {
		machineSkip = fmt.Sprintf("no root file system for systemd machines: %v", err)
		return
	}
	took, version, err := hosts.Probe(prefix+"-probe", rootfs)
	if err != nil {
		machineSkip = fmt.Sprintf("systemd-nspawn cannot boot a machine here: %v", err)
		return
	}
	machineRootfs = rootfs
	machineProbe = fmt.Sprintf("probe machine (%s) booted to running in %v", version, took.Round(time.Millisecond))
}

// buildAgent compiles ./cmd/admq-agent for linux/amd64 to out.
func buildAgent(out string) error {
	return testenv.Build(out, "./cmd/admq-agent", "GOOS=linux", "GOARCH=amd64")
}
