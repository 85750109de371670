package rpc_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/agent/node"
	"github.com/admq/admq-manager/agent/rpc"
	"github.com/admq/admq-manager/agent/supervisor"
	at "github.com/admq/admq-manager/internal/archive/archivetest"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// The manifest of the package the hostile manager deploys: one server,
// started from the program dir with its data dir.
const serverManifest = `{"manifestVersion": 1, "name": "server", "version": "1.0", "components": {"broker": {
  "start": ["{programDir}/bin/server", "--data={dataDir}", "--port={serverPort}"],
  "env": {"SERVER_OPTS": "-Xmx{myid}m"},
  "configFiles": [{"name": "server.conf", "path": "conf/server.conf", "format": "properties"}],
  "serverPort": 4222, "health": {"command": ["true"]}}}}`

// agentService serves the agent's gRPC service on a loopback port, as the
// tunnel would, and returns a client of it and the agent's state dir.
func agentService(t *testing.T) (agentv1.AgentServiceClient, string) {
	t.Helper()
	state := t.TempDir()
	sup, err := supervisor.New(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sup.Close)
	nodes, err := node.New(state, sup, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	agentv1.RegisterAgentServiceServer(srv, &rpc.Service{Nodes: nodes})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentv1.NewAgentServiceClient(conn), state
}

func push(t *testing.T, c agentv1.AgentServiceClient, data []byte) string {
	t.Helper()
	s := sha256.Sum256(data)
	sha := hex.EncodeToString(s[:])
	stream, err := c.PushPackage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&agentv1.PackageChunk{Sha256: sha, Size: int64(len(data)), Data: data}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	return sha
}

// TestAgentRefusesHostileManager speaks to the agent's gRPC service as a
// manager gone bad would: every request that writes outside the node's
// dirs, runs a command the package does not declare, or puts a node in a
// dir the agent must not touch is refused by the agent itself
// (InvalidArgument), and writes nothing; a removal of dirs the agent did
// not create keeps them and says so.
func TestAgentRefusesHostileManager(t *testing.T) {
	c, state := agentService(t)
	ctx := t.Context()
	sha := push(t, c, at.TarGz(t,
		at.File("admq-package.json", serverManifest),
		at.Entry{Name: "bin/server", Body: "#!/bin/sh\nexec sleep 600\n", Mode: 0o755},
		at.File("conf/server.conf", "port=1\n"),
	))
	root := t.TempDir()
	prog, data := filepath.Join(root, "opt/n1"), filepath.Join(root, "data/n1")
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	// A data dir that exists already, holding a link out of it.
	linked := filepath.Join(root, "data/linked")
	if err := os.MkdirAll(linked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(linked, "conf")); err != nil {
		t.Fatal(err)
	}
	good := func() *agentv1.DeployNodeRequest {
		return &agentv1.DeployNodeRequest{
			OperationId: "op", Name: "n1", PackageSha256: sha, PackageFormat: "tar.gz",
			ProgramDir: prog, DataDir: data,
			Argv:        []string{prog + "/bin/server", "--data=" + data, "--port=4222"},
			Env:         []string{"SERVER_OPTS=-Xmx512m"},
			ConfigFiles: []*agentv1.ConfigFileContent{{Path: "conf/server.conf", Content: []byte("port=4222\n")}},
		}
	}
	cases := []struct {
		name   string
		change func(r *agentv1.DeployNodeRequest)
		want   string
	}{
		{"config file in /etc", func(r *agentv1.DeployNodeRequest) {
			r.ConfigFiles = append(r.ConfigFiles, &agentv1.ConfigFileContent{Path: "/etc/cron.d/admq", Content: []byte("* * * * * root sh\n")})
		}, "want a clean path inside program_dir or data_dir"},
		{"config file up and out", func(r *agentv1.DeployNodeRequest) {
			r.ConfigFiles[0].Path = "../../../outside/evil"
		}, "leaves the program dir"},
		{"config file through a link", func(r *agentv1.DeployNodeRequest) {
			r.DataDir = linked
			r.Argv[1] = "--data=" + linked
			r.ConfigFiles[0].Path = filepath.Join(linked, "conf/evil")
		}, "leads out of"},
		{"config file over the install marker", func(r *agentv1.DeployNodeRequest) {
			r.ConfigFiles[0].Path = filepath.Join(data, ".admq-node")
		}, "the agent's own file"},
		{"log dir elsewhere", func(r *agentv1.DeployNodeRequest) { r.LogDir = outside }, "log_dir"},
		{"a shell instead of the server", func(r *agentv1.DeployNodeRequest) {
			r.Argv = []string{"/bin/sh", "-c", "rm -rf " + outside}
		}, "the package does not declare this command"},
		{"another program with the right arguments", func(r *agentv1.DeployNodeRequest) {
			r.Argv[0] = "/bin/sleep"
		}, "the package does not declare this command"},
		{"an extra argument", func(r *agentv1.DeployNodeRequest) { r.Argv = append(r.Argv, "--exec=/bin/sh") }, "start has 3 arguments, not 4"},
		{"the server of another program dir", func(r *agentv1.DeployNodeRequest) {
			r.Argv[0] = outside + "/bin/server"
		}, "the package does not declare this command"},
		{"LD_PRELOAD", func(r *agentv1.DeployNodeRequest) { r.Env = append(r.Env, "LD_PRELOAD="+outside+"/x.so") }, "env LD_PRELOAD is not declared"},
		{"work dir elsewhere", func(r *agentv1.DeployNodeRequest) { r.WorkDir = outside }, "work dir"},
		{"program dir in /usr", func(r *agentv1.DeployNodeRequest) {
			r.ProgramDir = "/usr/lib/admq"
			r.Argv[0] = "/usr/lib/admq/bin/server"
		}, "/usr and everything under it"},
		{"data dir is the agent's state dir", func(r *agentv1.DeployNodeRequest) {
			r.DataDir = state
			r.Argv[1] = "--data=" + state
		}, "the agent's state dir"},
		{"data dir is /var/lib", func(r *agentv1.DeployNodeRequest) {
			r.DataDir = "/var/lib"
			r.Argv[1] = "--data=/var/lib"
		}, "system directory"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			r.OperationId = "bad-" + string(rune('a'+i))
			tc.change(r)
			_, err := c.DeployNode(ctx, r)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want InvalidArgument saying %q", err, tc.want)
			}
			for _, p := range []string{prog, data, filepath.Join(outside, "evil"), filepath.Join(linked, "logs")} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("the refused deploy wrote %s", p)
				}
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("the refused deploy wrote in %s: %v", outside, ents)
			}
			if st, err := c.NodeStatus(ctx, &agentv1.NodeStatusRequest{}); err != nil || len(st.GetNodes()) != 0 {
				t.Fatalf("after a refused deploy the agent knows nodes %v (%v)", st.GetNodes(), err)
			}
		})
	}

	// The declared command is accepted.
	if _, err := c.DeployNode(ctx, good()); err != nil {
		t.Fatalf("the declared deploy: %v", err)
	}

	// Removing dirs the agent did not create: the node goes, the dirs stay
	// and are reported.
	precious := filepath.Join(root, "var/lib/postgres")
	if err := os.MkdirAll(precious, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(precious, "PG_VERSION"), []byte("16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := c.RemoveNode(ctx, &agentv1.RemoveNodeRequest{
		OperationId: "rm1", Name: "n1", RemoveDirs: true, ProgramDir: linked, DataDir: precious,
		AllowedRoots: []string{filepath.Dir(linked), filepath.Dir(precious)},
	})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{}
	for _, k := range res.GetKeptDirs() {
		kept[k.GetPath()] = k.GetReason()
	}
	if len(kept) != 2 || !strings.Contains(kept[precious], "no install marker") || !strings.Contains(kept[linked], "no install marker") {
		t.Fatalf("kept %v: want both dirs kept for having no install marker", kept)
	}
	if _, err := os.Stat(filepath.Join(precious, "PG_VERSION")); err != nil {
		t.Fatalf("the removal deleted a file it did not create: %v", err)
	}
	// The dirs the deploy created go with their node.
	res, err = c.RemoveNode(ctx, &agentv1.RemoveNodeRequest{
		OperationId: "rm2", Name: "n1", RemoveDirs: true, ProgramDir: prog, DataDir: data,
		AllowedRoots: []string{filepath.Dir(prog), filepath.Dir(data)},
	})
	if err != nil || len(res.GetKeptDirs()) != 0 {
		t.Fatalf("removal of the dirs the deploy created: kept %v, %v", res.GetKeptDirs(), err)
	}
	for _, p := range []string{prog, data} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
}
