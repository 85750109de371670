package tunnel_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/tunnel"
)

// TestDeployNodeFreeAddrs: the agent refuses to start a node onto a port
// another process holds, as ErrAgentConflict naming the address, and
// refuses a malformed address as bad input.
func TestDeployNodeFreeAddrs(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	id, _ := e.connectAgent(t, e.token(t, 1), t.TempDir())
	ctx := t.Context()
	pkg := testPackage(t)
	sha := sum(pkg)
	if _, err := e.hub.PushPackage(ctx, id, sha, int64(len(pkg)), bytes.NewReader(pkg)); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	root := t.TempDir()
	req := deploy.DeployRequest{
		OperationID: "op-ports-1", Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
		ProgramDir: filepath.Join(root, "program"), DataDir: filepath.Join(root, "data"),
		Argv: []string{"/bin/sh", "bin/server.sh"}, StopGrace: time.Second, Start: true,
		FreeAddrs: []string{addr},
	}
	t.Cleanup(func() {
		e.hub.RemoveNode(context.Background(), id, deploy.RemoveRequest{OperationID: "cleanup", Name: "n1"})
	})

	_, err = e.hub.DeployNode(ctx, id, req)
	want := addr + " is already in use on this server (address already in use); another process listens there"
	if !errors.Is(err, deploy.ErrAgentConflict) || !strings.Contains(err.Error(), want) {
		t.Fatalf("deploy onto a taken port: %v, want ErrAgentConflict saying %q", err, want)
	}
	if sts, err := e.hub.NodeStatus(ctx, id, []string{"n1"}); err != nil || len(sts) != 1 || sts[0].Running || sts[0].Desired != "" {
		t.Fatalf("node after the refused deploy: %+v %v, want installed, never started", sts, err)
	}

	bad := req
	bad.FreeAddrs = []string{"localhost:2181"}
	if _, err := e.hub.DeployNode(ctx, id, bad); err == nil {
		t.Fatal("host name accepted")
	} else if _, ok := invalid.As(err); !ok || !strings.Contains(err.Error(), "free_addrs") {
		t.Fatalf("deploy with a host name: %v, want an invalid free_addrs", err)
	}

	l.Close()
	if res, err := e.hub.DeployNode(ctx, id, req); err != nil || !res.State.Running {
		t.Fatalf("deploy with the port free: %+v %v", res, err)
	}
}
