package tunnel_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/tunnel"
)

// testPackage builds a tar.gz with a tiny shell "server" and its config.
func testPackage(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	files := []struct {
		name, body string
		mode       int64
	}{
		{"bin/server.sh", "#!/bin/sh\necho \"server up: $(cat conf/server.conf)\"\nexec sleep 1000\n", 0o755},
		{"conf/server.conf", "port=1\n", 0o644},
		// The agent runs only what the manifest declares.
		{"admq-package.json", `{"manifestVersion": 1, "name": "server", "version": "1.0", "components": {"broker": {
			"start": ["/bin/sh", "bin/server.sh"], "serverPort": 4222, "health": {"command": ["true"]}}}}`, 0o644},
	}
	for _, d := range []string{"bin/", "conf/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// connectAgent enrolls and connects a real agent on stateDir.
func (e *env) connectAgent(t testing.TB, token, stateDir string) (ids.ID, func()) {
	t.Helper()
	connected, stop := e.startAgent(t, token, stateDir)
	id, err := ids.Parse(<-connected)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session", func() bool { return e.hub.Online(id) })
	return id, stop
}

// cancelingReader cancels a transfer once the agent has written at least
// minPartial bytes of it.
type cancelingReader struct {
	r          io.ReaderAt
	reads      atomic.Int32
	after      int32
	partPath   string
	minPartial int64
	cancel     context.CancelFunc
}

func (c *cancelingReader) ReadAt(p []byte, off int64) (int, error) {
	if c.reads.Add(1) > c.after {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if fi, err := os.Stat(c.partPath); err == nil && fi.Size() >= c.minPartial {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.cancel()
	}
	return c.r.ReadAt(p, off)
}

func TestPackageTransfer(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	stateDir := t.TempDir()
	id, _ := e.connectAgent(t, e.token(t, 1), stateDir)
	ctx := t.Context()
	sent := mustCounter(t, e.reg, "admq_tunnel_package_bytes_total", "")

	pkg := testPackage(t)
	sha := sum(pkg)
	if present, _, err := e.hub.HasPackage(ctx, id, sha); err != nil || present {
		t.Fatalf("HasPackage before push: %v %v", present, err)
	}
	n, err := e.hub.PushPackage(ctx, id, sha, int64(len(pkg)), bytes.NewReader(pkg))
	if err != nil || n != int64(len(pkg)) {
		t.Fatalf("push: %d %v", n, err)
	}
	if present, _, err := e.hub.HasPackage(ctx, id, sha); err != nil || !present {
		t.Fatalf("HasPackage after push: %v %v", present, err)
	}
	before := testutil.ToFloat64(sent)
	if n, err := e.hub.PushPackage(ctx, id, sha, int64(len(pkg)), bytes.NewReader(pkg)); err != nil || n != 0 {
		t.Fatalf("second push: sent %d, %v; want skipped", n, err)
	}
	if after := testutil.ToFloat64(sent); after != before {
		t.Fatalf("second push sent %v bytes", after-before)
	}

	// A wrong sha256: refused, and nothing kept.
	bad := strings.Repeat("ab", 32)
	_, err = e.hub.PushPackage(ctx, id, bad, int64(len(pkg)), bytes.NewReader(pkg))
	if !errors.Is(err, deploy.ErrPackageCorrupt) {
		t.Fatalf("push with a wrong sha256: %v", err)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "packages", bad+".part")); !os.IsNotExist(err) {
		t.Fatalf("partial file of a corrupt transfer kept: %v", err)
	}
	if present, partial, err := e.hub.HasPackage(ctx, id, bad); err != nil || present || partial != 0 {
		t.Fatalf("HasPackage of the corrupt package: %v %d %v", present, partial, err)
	}

	// Malformed requests are InvalidArgument on the agent.
	if _, _, err := e.hub.HasPackage(ctx, id, "nope"); err == nil {
		t.Fatal("bad sha accepted")
	} else if _, ok := invalid.As(err); !ok {
		t.Fatalf("bad sha: %v, want an invalid.Error", err)
	}

	// An interrupted transfer is resumed.
	big := make([]byte, 8<<20+12345)
	rand.Read(big)
	bigSHA := sum(big)
	pctx, cancel := context.WithCancel(ctx)
	cr := &cancelingReader{r: bytes.NewReader(big), after: 4, partPath: filepath.Join(stateDir, "packages", bigSHA+".part"), minPartial: 2 << 20, cancel: cancel}
	n1, err := e.hub.PushPackage(pctx, id, bigSHA, int64(len(big)), cr)
	cancel()
	if err == nil {
		t.Fatal("interrupted push succeeded")
	}
	// The agent may still be writing what was in flight when the push was
	// cut: wait until its partial file stops growing, so that the resumed
	// push is not refused as a second transfer of the same package (the
	// refused attempt's bytes would count as sent).
	var partial int64
	for stable := 0; stable < 3; {
		_, p, err := e.hub.HasPackage(ctx, id, bigSHA)
		if err != nil {
			t.Fatal(err)
		}
		if p == partial {
			stable++
		} else {
			partial, stable = p, 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	n2, err := e.hub.PushPackage(ctx, id, bigSHA, int64(len(big)), bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("interrupted push sent %d, agent kept %d, resumed push sent %d of %d", n1, partial, n2, len(big))
	if n2 >= int64(len(big)) || n2 <= 0 {
		t.Fatalf("resumed push sent %d of %d bytes", n2, len(big))
	}
	if present, _, err := e.hub.HasPackage(ctx, id, bigSHA); err != nil || !present {
		t.Fatalf("resumed package not present: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(stateDir, "packages", bigSHA+".pkg"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("cached package differs: %v", err)
	}
}

func TestDeployRunRemoveNode(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	stateDir := t.TempDir()
	id, stopAgent := e.connectAgent(t, e.token(t, 1), stateDir)
	ctx := t.Context()

	pkg := testPackage(t)
	sha := sum(pkg)
	if _, err := e.hub.PushPackage(ctx, id, sha, int64(len(pkg)), bytes.NewReader(pkg)); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "nodes")
	programDir := filepath.Join(root, "n1", "program")
	dataDir := filepath.Join(root, "n1", "data")
	req := deploy.DeployRequest{
		OperationID:   "op-deploy-1",
		Name:          "n1",
		PackageSHA256: sha,
		PackageFormat: "tar.gz",
		ProgramDir:    programDir,
		DataDir:       dataDir,
		ConfigFiles:   []deploy.ConfigFile{{Path: "conf/server.conf", Content: []byte("port=2\n"), Mode: 0o640}},
		Argv:          []string{"/bin/sh", "bin/server.sh"},
		StopGrace:     2 * time.Second,
		Start:         true,
	}
	removed := false
	t.Cleanup(func() {
		if !removed { // do not leave a sleep behind
			e.hub.RemoveNode(context.Background(), id, deploy.RemoveRequest{OperationID: "cleanup", Name: "n1"})
		}
	})
	res, err := e.hub.DeployNode(ctx, id, req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unpacked || res.Replayed || !res.State.Running || res.State.PID == 0 {
		t.Fatalf("deploy: %+v", res)
	}
	pid := res.State.PID
	conf, err := os.ReadFile(filepath.Join(programDir, "conf", "server.conf"))
	if err != nil || string(conf) != "port=2\n" {
		t.Fatalf("config file: %q %v", conf, err)
	}
	if prev, err := os.ReadFile(filepath.Join(programDir, "conf", "server.conf.prev")); err != nil || string(prev) != "port=1\n" {
		t.Fatalf("previous config: %q %v", prev, err)
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("data dir: %v %v", fi, err)
	}

	// The same operation again: the recorded result, nothing done.
	again, err := e.hub.DeployNode(ctx, id, req)
	if err != nil || !again.Replayed || again.State.PID != pid {
		t.Fatalf("repeated deploy: %+v %v", again, err)
	}
	// A new deploy of the same package does not unpack again.
	req2 := req
	req2.OperationID = "op-deploy-2"
	if r2, err := e.hub.DeployNode(ctx, id, req2); err != nil || r2.Unpacked || r2.State.PID != pid {
		t.Fatalf("redeploy: %+v %v", r2, err)
	}

	waitFor(t, "the node's output in its log", func() bool {
		b, err := e.hub.NodeLogs(ctx, id, "n1", 4096)
		return err == nil && strings.Contains(string(b), "server up: port=2")
	})

	// Commands.
	st, err := e.hub.NodeCommand(ctx, id, "op-stop-1", "n1", deploy.NodeStop)
	if err != nil || st.Running || st.Desired != "stopped" {
		t.Fatalf("stop: %+v %v", st, err)
	}
	st, err = e.hub.NodeCommand(ctx, id, "op-start-1", "n1", deploy.NodeStart)
	if err != nil || !st.Running || st.PID == pid {
		t.Fatalf("start: %+v %v", st, err)
	}
	st2, err := e.hub.NodeCommand(ctx, id, "op-restart-1", "n1", deploy.NodeRestart)
	if err != nil || !st2.Running || st2.PID == st.PID {
		t.Fatalf("restart: %+v %v", st2, err)
	}
	st3, err := e.hub.NodeCommand(ctx, id, "op-restart-1", "n1", deploy.NodeRestart)
	if err != nil || st3.PID != st2.PID {
		t.Fatalf("repeated restart: %+v %v (want pid %d)", st3, err, st2.PID)
	}
	if _, err := e.hub.NodeCommand(ctx, id, "op-x", "nope", deploy.NodeStart); !errors.Is(err, deploy.ErrNodeNotInstalled) {
		t.Fatalf("command on an unknown node: %v", err)
	}
	pid = st2.PID

	// Health checks run on the agent.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if ok, detail, err := e.hub.CheckHealth(ctx, id, deploy.HealthCheck{TCPAddr: addr, Timeout: time.Second}); err != nil || !ok {
		t.Fatalf("tcp check: %v %q %v", ok, detail, err)
	}
	ln.Close()
	if ok, detail, err := e.hub.CheckHealth(ctx, id, deploy.HealthCheck{TCPAddr: addr, Timeout: time.Second}); err != nil || ok {
		t.Fatalf("tcp check of a closed port: %v %q %v", ok, detail, err)
	}
	if ok, _, err := e.hub.CheckHealth(ctx, id, deploy.HealthCheck{Command: []string{"true"}}); err != nil || !ok {
		t.Fatalf("command check: %v %v", ok, err)
	}
	if ok, detail, err := e.hub.CheckHealth(ctx, id, deploy.HealthCheck{Command: []string{"sh", "-c", "echo broken; exit 3"}}); err != nil || ok || !strings.Contains(detail, "broken") {
		t.Fatalf("failing command check: %v %q %v", ok, detail, err)
	}
	if _, _, err := e.hub.CheckHealth(ctx, id, deploy.HealthCheck{}); err == nil {
		t.Fatal("empty check accepted")
	} else if _, ok := invalid.As(err); !ok {
		t.Fatalf("empty check: %v", err)
	}

	// The agent restarts: the node keeps running and is adopted.
	stopAgent()
	waitFor(t, "the hub to drop the session", func() bool { return !e.hub.Online(id) })
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("node died with the agent: %v", err)
	}
	id2, _ := e.connectAgent(t, "", stateDir)
	if id2 != id {
		t.Fatalf("agent came back as %s, was %s", id2, id)
	}
	sts, err := e.hub.NodeStatus(ctx, id, nil)
	if err != nil || len(sts) != 1 || !sts[0].Running || sts[0].PID != pid || !sts[0].Adopted {
		t.Fatalf("status after agent restart: %+v %v (want pid %d, adopted)", sts, err, pid)
	}

	// Removing dirs outside the allowed roots is refused, and nothing happens.
	_, err = e.hub.RemoveNode(ctx, id, deploy.RemoveRequest{
		OperationID: "op-rm-1", Name: "n1", RemoveDirs: true, ProgramDir: programDir, DataDir: dataDir,
		AllowedRoots: []string{filepath.Join(root, "elsewhere")},
	})
	if _, ok := invalid.As(err); !ok {
		t.Fatalf("remove outside roots: %v", err)
	}
	if _, err := os.Stat(programDir); err != nil {
		t.Fatal("program dir removed")
	}
	if sts, _ := e.hub.NodeStatus(ctx, id, []string{"n1"}); len(sts) != 1 || !sts[0].Running {
		t.Fatalf("node touched by a refused remove: %+v", sts)
	}
	// Inside the allowed roots: stopped, forgotten and deleted.
	if kept, err := e.hub.RemoveNode(ctx, id, deploy.RemoveRequest{
		OperationID: "op-rm-2", Name: "n1", RemoveDirs: true, ProgramDir: programDir, DataDir: dataDir,
		AllowedRoots: []string{root},
	}); err != nil || len(kept) != 0 {
		t.Fatalf("remove: kept %+v, %v", kept, err)
	}
	removed = true
	for _, d := range []string{programDir, dataDir} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Fatalf("%s still there: %v", d, err)
		}
	}
	if sts, err := e.hub.NodeStatus(ctx, id, nil); err != nil || len(sts) != 0 {
		t.Fatalf("status after remove: %+v %v", sts, err)
	}
	waitFor(t, "the node process to end", func() bool { return syscall.Kill(pid, 0) != nil })
}
