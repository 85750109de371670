// Package clustertest is test support for the packages that work on
// clusters (cluster, config, deploy): a real store in a temp dir with the
// package, cluster and config services on it, registered servers, and a
// small ZooKeeper test package. Only tests import it.
package clustertest

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/store"
	"github.com/admq/admq-manager/manager/store/storetest"
)

// Env is a store in a temp dir and the services on it.
type Env struct {
	DB       *store.DB
	IDs      *ids.Generator
	Packages *pkg.Service
	Clusters *cluster.Service
	Configs  *config.Service
}

// New opens a store (storetest.Open), with the
// package (1 MiB at most), cluster and config services on it; ids come
// from a generator for node nodeID.
func New(t testing.TB, nodeID int64) *Env {
	t.Helper()
	db := storetest.Open(t)
	gen, err := ids.NewGenerator(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{DB: db, IDs: gen, Packages: pkg.NewService(db, filepath.Join(t.TempDir(), "packages"), 1<<20, gen, time.Now)}
	e.Clusters = cluster.NewService(db, e.Packages, gen, time.Now)
	e.Configs = config.NewService(db, e.Packages, gen, time.Now)
	return e
}

// Upload stores the package file data under name.
func (e *Env) Upload(t testing.TB, name string, data []byte) pkg.Package {
	t.Helper()
	p, err := e.Packages.Upload(t.Context(), name, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// AddServers registers n servers with manager IPs 10.0.0.1 to 10.0.0.n
// and, when dataIPs is set, data IPs 192.168.0.1 to 192.168.0.n.
func (e *Env) AddServers(t testing.TB, n int, dataIPs bool) []fleet.Server {
	t.Helper()
	var out []fleet.Server
	for i := 1; i <= n; i++ {
		s := fleet.Server{ID: e.IDs.Next(), ManagerIP: fmt.Sprintf("10.0.0.%d", i)}
		if dataIPs {
			s.DataIP = fmt.Sprintf("192.168.0.%d", i)
		}
		if err := e.DB.CreateServer(t.Context(), &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// Specs places a node on each of ips, in /opt/admq/{cluster}/{nodeDir}
// and /data/admq/{cluster}/{nodeDir}.
func Specs(ips ...string) []cluster.NodeSpec {
	var out []cluster.NodeSpec
	for _, ip := range ips {
		out = append(out, cluster.NodeSpec{ManagerIP: ip, ProgramDir: "/opt/admq/{cluster}/{nodeDir}", DataDir: "/data/admq/{cluster}/{nodeDir}"})
	}
	return out
}

// ZooCfg is the coordinator's config file in the test ZooKeeper package:
// 11 keys, comments, a {variable} and a literal brace.
const ZooCfg = `# The number of milliseconds of each tick
tickTime=2000
# The number of ticks that the initial
# synchronization phase can take
initLimit=10
syncLimit=5
# the directory where the snapshot is stored.
dataDir={dataDir}/zookeeper
clientPort=2181
maxClientCnxns=60
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
admin.enableServer=false
log.pattern=%d{ISO8601} %m
# the ensemble
{zkEnsemble}
`

// ZooKeeperManifest is the manifest of the test ZooKeeper package of
// version: a coordinator with zoo.cfg (properties) and myid (raw, written
// to {dataDir}/myid).
func ZooKeeperManifest(version string) string {
	return `{"name": "zookeeper", "version": "` + version + `", "mqType": 1, "components": {"coordinator": {
  "start": ["{programDir}/bin/zkServer.sh", "start-foreground"],
  "configFiles": [{"name": "zoo.cfg", "path": "conf/zoo.cfg", "format": "properties"},
                  {"name": "myid", "path": "conf/myid.tpl", "format": "raw", "target": "{dataDir}/myid"}],
  "serverPort": 2181, "portKey": "clientPort",
  "health": {"tcp": "{managerIp}:{serverPort}"}}}}`
}
