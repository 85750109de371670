package workloads

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
)

// Debian's ZooKeeper files.
const (
	ZooKeeperJar   = "/usr/share/java/zookeeper.jar"
	ZooKeeperCli   = "/usr/share/zookeeper/bin/zkCli.sh"
	ZooKeeperVer   = "3.8.0"
	javaDir        = "/usr/share/java"
	zooKeeperLog4j = "/etc/zookeeper/conf_example/log4j.properties"
)

// zooKeeperJars are what QuorumPeerMain loads (checked with -verbose:class
// and /usr/share/java hidden): zookeeper.jar's manifest Class-Path points at
// /usr/share/java, so every jar it needs is copied into lib/ to make the
// package self-contained. Logging needs slf4j-log4j12 and log4j-1.2.
var zooKeeperJars = []string{
	"zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-log4j12.jar", "log4j-1.2.jar",
	"metrics-core.jar", "snappy-java.jar", "commons-cli.jar",
}

// ZooKeeperComponent is the package's component, run by a coordinator node.
const ZooKeeperComponent = "coordinator"

// zooCfg is conf/zoo.cfg, a properties template. The line "{zkEnsemble}"
// becomes the server.N lines (config.RenderFile).
const zooCfg = `# ZooKeeper for ADMQ: rendered per node by the manager.
tickTime=2000
initLimit=10
syncLimit=5
dataDir={dataDir}
clientPort={serverPort}
clientPortAddress={dataIp}
# The AdminServer would bind 0.0.0.0:8080 on every node.
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,mntr,conf,isro
# The ensemble: one server.N line per coordinator of the cluster.
{zkEnsemble}
`

// zooMyID is conf/myid, a raw template written to <dataDir>/myid, where
// ZooKeeper reads the node's id.
const zooMyID = "{myid}\n"

// ZooKeeperManifest is the manifest of the ZooKeeper package. The agent
// runs the JVM itself, no shell in between: conf/myid is a config file
// whose target is {dataDir}/myid, so nothing needs writing at start.
func ZooKeeperManifest() manifest.Manifest {
	return manifest.Manifest{
		ManifestVersion: 1,
		Name:            "zookeeper",
		Version:         ZooKeeperVer,
		MqType:          1,
		Description:     "Apache ZooKeeper from Debian's packages, for ADMQ tests",
		Components: map[string]manifest.Component{
			ZooKeeperComponent: {
				Start: []string{"java", "-cp", "{programDir}/conf:{programDir}/lib/*",
					"-Dzookeeper.log.dir={dataDir}/logs", "-Dzookeeper.root.logger=INFO,ROLLINGFILE",
					"org.apache.zookeeper.server.quorum.QuorumPeerMain", "{programDir}/conf/zoo.cfg"},
				ConfigFiles: []manifest.ConfigFile{
					{Name: "zoo.cfg", Path: "conf/zoo.cfg", Format: manifest.FormatProperties},
					{Name: "log4j.properties", Path: "conf/log4j.properties", Format: manifest.FormatRaw},
					{Name: "myid", Path: "conf/myid", Format: manifest.FormatRaw, Target: "{dataDir}/myid"},
				},
				ServerPort: 2181,
				PortKey:    "clientPort",
				// An ensemble: a rollout keeps its quorum and restarts the
				// leader last.
				Quorum:    true,
				RoleProbe: manifest.RoleProbe{TCP: "{dataIp}:{serverPort}", Send: "srvr", Leader: "^Mode: leader$", TimeoutSeconds: 3},
				// Ready, not just alive: ruok answers imok without quorum.
				Health: manifest.Health{
					Command: []string{"/bin/bash", "-c",
						"exec 3<>/dev/tcp/{dataIp}/{serverPort} && echo srvr >&3 && grep -qE '^Mode: (leader|follower|standalone)' <&3"},
					TimeoutSeconds: 5, IntervalSeconds: 10, StartSeconds: 60,
				},
			},
		},
	}
}

// HaveZooKeeper says what is missing to run ZooKeeper, or "".
func HaveZooKeeper() string {
	if _, err := exec.LookPath("java"); err != nil {
		return "java is not installed (apt-get install zookeeper)"
	}
	for _, f := range append([]string{ZooKeeperCli, zooKeeperLog4j}, zooKeeperJars...) {
		if !filepath.IsAbs(f) {
			f = filepath.Join(javaDir, f)
		}
		if _, err := os.Stat(f); err != nil {
			return f + " is missing (apt-get install zookeeper libslf4j-java liblog4j1.2-java)"
		}
	}
	return ""
}

// ZooKeeperPackage builds admq-zookeeper-V3.8.0-all.tar.gz in dir from
// Debian's installed ZooKeeper and returns its path.
func ZooKeeperPackage(t testing.TB, dir string) string {
	t.Helper()
	if why := HaveZooKeeper(); why != "" {
		t.Fatal(why)
	}
	files := []Entry{
		{Name: "conf/zoo.cfg", Data: []byte(zooCfg)},
		{Name: "conf/log4j.properties", Data: readFile(t, zooKeeperLog4j)},
		{Name: "conf/myid", Data: []byte(zooMyID)},
	}
	for _, j := range zooKeeperJars {
		files = append(files, Entry{Name: "lib/" + j, Data: readFile(t, filepath.Join(javaDir, j))})
	}
	return build(t, dir, "admq-zookeeper-V"+ZooKeeperVer+"-all.tar.gz", ZooKeeperManifest(), files)
}

// FourLetter sends a ZooKeeper four-letter word to addr and returns the
// answer.
func FourLetter(ctx context.Context, addr, word string) (string, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, word); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// ZKMode returns the "Mode:" srvr reports at addr (leader, follower,
// standalone), or "" with the error when the server does not serve.
func ZKMode(ctx context.Context, addr string) (string, error) {
	out, err := FourLetter(ctx, addr, "srvr")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("srvr at %s: no mode in %q", addr, strings.TrimSpace(out))
}

// ZKCli runs zkCli.sh against server with cmd and returns its output.
func ZKCli(ctx context.Context, server string, cmd ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args := append([]string{"-server", server}, cmd...)
	c := exec.CommandContext(ctx, ZooKeeperCli, args...)
	c.Env = append(os.Environ(), "ZOO_LOG_DIR="+os.TempDir(), "JVMFLAGS=-Xmx64m")
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("zkCli.sh %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
