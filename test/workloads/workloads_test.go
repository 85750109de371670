package workloads

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/admq/admq-manager/internal/archive"
	"github.com/admq/admq-manager/manager/config"
)

// render renders the component's files for the node of ips[i].
func render(t *testing.T, p *Package, component string, ips []string, port, i int) config.NodeConfig {
	t.Helper()
	top := Cluster("c1", component, "/srv/admq", ips, port)
	nc, err := p.Render(component, top, top.Members[i])
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func inspect(t *testing.T, path string) archive.Inspection {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ins, err := archive.Inspect(bytes.NewReader(data), archive.FormatTarGz, archive.Limits{})
	if err != nil {
		t.Fatalf("archive.Inspect(%s): %v", path, err)
	}
	return ins
}

func TestZooKeeperPackage(t *testing.T) {
	if why := HaveZooKeeper(); why != "" {
		t.Skip(why)
	}
	p := ZooKeeperPackage(t, t.TempDir())
	if filepath.Base(p) != "admq-zookeeper-V3.8.0-all.tar.gz" {
		t.Fatalf("file name %s", filepath.Base(p))
	}
	ins := inspect(t, p)
	for _, f := range []string{"admq-package.json", "conf/zoo.cfg", "conf/log4j.properties", "conf/myid", "lib/zookeeper.jar", "lib/log4j-1.2.jar"} {
		if ins.Files[f] == 0 {
			t.Errorf("%s missing or empty in the package", f)
		}
	}
	pkg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	comp := pkg.Manifest.Components[ZooKeeperComponent]
	nc := render(t, pkg, ZooKeeperComponent, []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}, 2181, 1)
	files := nc.Files
	cfg := string(files[0].Content)
	for _, want := range []string{
		"dataDir=/srv/admq/data/coordinator-2\n", "clientPort=2181\n", "clientPortAddress=127.0.0.12\n",
		"server.1=127.0.0.11:2888:3888\nserver.2=127.0.0.12:2888:3888\nserver.3=127.0.0.13:2888:3888\n",
		"admin.enableServer=false\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("zoo.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if got, want := string(files[1].Content), string(pkg.Config["conf/log4j.properties"]); got != want || files[1].Path != "conf/log4j.properties" {
		t.Errorf("log4j.properties changed by rendering, or moved to %s:\n%s", files[1].Path, got)
	}
	// myid goes to the data dir, where ZooKeeper reads it.
	if files[2].Path != "/srv/admq/data/coordinator-2/myid" || string(files[2].Content) != "2\n" {
		t.Errorf("myid: %s %q", files[2].Path, files[2].Content)
	}
	// The agent runs java itself: no shell.
	argv, err := Expand(comp.Start, nc.Vars)
	want := []string{"java", "-cp", "/srv/admq/program/coordinator-2/conf:/srv/admq/program/coordinator-2/lib/*",
		"-Dzookeeper.log.dir=/srv/admq/data/coordinator-2/logs", "-Dzookeeper.root.logger=INFO,ROLLINGFILE",
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", "/srv/admq/program/coordinator-2/conf/zoo.cfg"}
	if err != nil || !slices.Equal(argv, want) {
		t.Fatalf("start: %q %v\nwant %q", argv, err, want)
	}
}

func TestNATSPackage(t *testing.T) {
	if why := HaveNATS(); why != "" {
		t.Skip(why)
	}
	dir := t.TempDir()
	p := NATSPackage(t, dir)
	if !strings.HasPrefix(filepath.Base(p), "admq-nats-V2.") || !strings.HasSuffix(p, "-x86.tar.gz") {
		t.Fatalf("file name %s", filepath.Base(p))
	}
	ins := inspect(t, p)
	if ins.Files["bin/nats-server"] == 0 {
		t.Fatal("bin/nats-server missing")
	}
	pkg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"}
	files := render(t, pkg, NATSComponent, hosts, 4222, 0).Files
	if len(files) != 1 || files[0].Path != "conf/nats.conf" {
		t.Fatalf("config files %+v", files)
	}
	conf := string(files[0].Content)
	for _, want := range []string{"server_name: broker-1\n", "listen: 127.0.0.21:4222\n", "cluster {\n  name: c1\n",
		"  routes: [nats-route://127.0.0.21:6222, nats-route://127.0.0.22:6222, nats-route://127.0.0.23:6222]\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats.conf lacks %q:\n%s", want, conf)
		}
	}
	// nats-server itself accepts the rendered config.
	cd := filepath.Join(dir, "conf")
	os.MkdirAll(cd, 0o755)
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Path), f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(NATSServer, "-t", "-c", filepath.Join(cd, "nats.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nats-server -t: %v\n%s", err, out)
	}
}
