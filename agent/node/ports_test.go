package node

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/admq/admq-manager/agent/supervisor"
	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/invalid"
)

// listen holds a TCP address for the test.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// freePort is a port nothing listens on at the moment on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	l := listen(t, "127.0.0.1:0")
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

// foreignIP is a documentation address this host does not have.
func foreignIP(t testing.TB) string {
	t.Helper()
	local := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			local[p.Addr()] = true
		}
	}
	for _, ip := range []string{"198.51.100.9", "203.0.113.9", "192.0.2.9"} {
		if !local[netip.MustParseAddr(ip)] {
			return ip
		}
	}
	t.Skip("every documentation address tried is on this host")
	return ""
}

func TestCheckFree(t *testing.T) {
	taken := listen(t, "127.0.0.1:0").Addr().String()
	wild := listen(t, ":0").Addr().(*net.TCPAddr).Port
	free := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	foreign := net.JoinHostPort(foreignIP(t), "2181")

	cases := []struct {
		name  string
		addrs []string
		errno syscall.Errno // 0: free
		want  []string      // in the message
	}{
		{name: "none"},
		{name: "free", addrs: []string{free}},
		{name: "taken", addrs: []string{free, taken}, errno: syscall.EADDRINUSE,
			want: []string{taken + " is already in use on this server (address already in use); another process listens there"}},
		{name: "taken by a wildcard listener", addrs: []string{"127.0.0.1:" + strconv.Itoa(wild)}, errno: syscall.EADDRINUSE,
			want: []string{"127.0.0.1:" + strconv.Itoa(wild) + " is already in use"}},
		{name: "not this host's", addrs: []string{foreign}, errno: syscall.EADDRNOTAVAIL,
			want: []string{strings.TrimSuffix(foreign, ":2181") + " is not an address of this server"}},
		{name: "every failure reported", addrs: []string{taken, free, foreign}, errno: syscall.EADDRINUSE,
			want: []string{taken + " is already in use", "is not an address of this server"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkFree(tc.addrs)
			if tc.errno == 0 {
				if err != nil {
					t.Fatalf("checkFree(%v) = %v, want nil", tc.addrs, err)
				}
				return
			}
			var ae *AddrError
			if !errors.As(err, &ae) || !errors.Is(err, tc.errno) {
				t.Fatalf("checkFree(%v) = %v, want an *AddrError with %v", tc.addrs, err, tc.errno)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("checkFree(%v) = %q, want it to say %q", tc.addrs, err, w)
				}
			}
		})
	}
	// Checking closed its listener: the free address is still free.
	listen(t, free)
}

func TestCheckFreeAddr(t *testing.T) {
	for _, a := range []string{"127.0.0.1:2181", "[::1]:1", ":65535", "198.18.0.2:4222", "[fe80::1%eth0]:80"} {
		if err := checkFreeAddr(a); err != nil {
			t.Errorf("checkFreeAddr(%q) = %v, want nil", a, err)
		}
	}
	bad := map[string]string{
		"":                   "want ip:port",
		"127.0.0.1":          "want ip:port",
		"127.0.0.1:0":        "want 1 to 65535",
		"127.0.0.1:65536":    "want 1 to 65535",
		"127.0.0.1:http":     "want 1 to 65535",
		"127.0.0.1:-1":       "want 1 to 65535",
		"localhost:2181":     `"localhost" is not an IP address`,
		"1.2.3.4.5:2181":     "is not an IP address",
		"[::1]:2181:2181":    "want ip:port",
		"127.0.0.1:2181/tcp": "want 1 to 65535",
	}
	for a, want := range bad {
		err := checkFreeAddr(a)
		if e, ok := invalid.As(err); !ok || e.Field != "free_addrs" || !strings.Contains(err.Error(), want) {
			t.Errorf("checkFreeAddr(%q) = %v, want an invalid free_addrs saying %q", a, err, want)
		}
	}
}

// sleepPackage puts a package whose run.sh sleeps in m's cache and
// returns its sha256.
func sleepPackage(t *testing.T, m *Manager) string {
	t.Helper()
	return cache(t, m, tgz(t, at.Entry{Name: "run.sh", Body: "#!/bin/sh\nexec sleep 1000\n", Mode: 0o755}))
}

func TestDeployRefusesTakenAddr(t *testing.T) {
	m := newManager(t)
	sha := sleepPackage(t, m)
	root := t.TempDir()
	l := listen(t, "127.0.0.1:0")
	addr := l.Addr().String()
	r := DeployRequest{
		OperationID: "op1", Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
		ProgramDir: filepath.Join(root, "program"), DataDir: filepath.Join(root, "data"),
		Argv: []string{"./run.sh"}, Start: true, FreeAddrs: []string{addr},
	}
	t.Cleanup(func() { m.Remove(t.Context(), RemoveRequest{OperationID: "cleanup", Name: "n1"}) })

	_, err := m.Deploy(t.Context(), r)
	var ae *AddrError
	if !errors.As(err, &ae) || !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr+" is already in use") {
		t.Fatalf("deploy onto a taken port: %v, want an *AddrError saying %s is already in use", err, addr)
	}
	// Installed, but nothing started: an empty log.
	if _, err := os.Stat(filepath.Join(r.ProgramDir, "run.sh")); err != nil {
		t.Errorf("program after the refused deploy: %v", err)
	}
	if _, err := m.sup.Status("n1"); !errors.Is(err, supervisor.ErrNotFound) {
		t.Errorf("supervisor after the refused deploy: %v, want no such node", err)
	}
	if sts, err := m.List([]string{"n1"}); err != nil || len(sts) != 1 || sts[0].Running || sts[0].Desired != "" {
		t.Errorf("status after the refused deploy: %+v %v, want installed, never started", sts, err)
	}
	if b, err := m.Logs("n1", 1024); err != nil || len(b) != 0 {
		t.Errorf("log after the refused deploy: %q %v, want empty", b, err)
	}
	// The refusal is not recorded: the same operation, retried once the
	// port is free, runs.
	l.Close()
	res, err := m.Deploy(t.Context(), r)
	if err != nil || res.Replayed || !res.Status.Running {
		t.Fatalf("deploy with the port free: %+v %v", res, err)
	}
	// A redeploy of the running node does not check: the node would hold
	// the port itself.
	listen(t, addr)
	r.OperationID = "op2"
	if res, err := m.Deploy(t.Context(), r); err != nil || !res.Status.Running {
		t.Fatalf("redeploy of the running node: %+v %v", res, err)
	}
	// Install only (no start): not checked either.
	r.OperationID, r.Start = "op3", false
	if _, err := m.Deploy(t.Context(), r); err != nil {
		t.Fatalf("install only: %v", err)
	}
}
