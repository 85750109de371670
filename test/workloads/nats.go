package workloads

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
)

// Debian's NATS server.
const (
	NATSServer    = "/usr/sbin/nats-server"
	NATSComponent = "broker"
	// NATS's monitoring and cluster ports are fixed: the manifest has one
	// serverPort and no arithmetic, so two nodes on one host would clash
	// (one broker per host is fine).
	NATSMonitorPort = 8222
	NATSRoutePort   = 6222
)

// natsConf is conf/nats.conf, a raw template. {peers} is every broker of
// the cluster, this one included (NATS ignores a route to itself), each as
// the component's peer template makes it: nats-route://<dataIp>:6222.
const natsConf = `# NATS for ADMQ: rendered per node by the manager.
server_name: {node}
listen: {dataIp}:{serverPort}
http: {dataIp}:8222
cluster {
  name: {cluster}
  listen: {dataIp}:6222
  routes: [{peers}]
}
`

// NATSManifest is the manifest of the NATS package, for version.
func NATSManifest(version string) manifest.Manifest {
	return manifest.Manifest{
		ManifestVersion: 1,
		Name:            "nats",
		Version:         version,
		MqType:          3,
		Description:     "NATS server from Debian's packages, for ADMQ tests",
		Components: map[string]manifest.Component{
			NATSComponent: {
				Start: []string{"{programDir}/bin/nats-server", "-c", "{programDir}/conf/nats.conf"},
				ConfigFiles: []manifest.ConfigFile{
					{Name: "nats.conf", Path: "conf/nats.conf", Format: manifest.FormatRaw},
				},
				ServerPort: 4222,
				Peer:       "nats-route://{dataIp}:" + strconv.Itoa(NATSRoutePort),
				Health: manifest.Health{
					HTTP:           "http://{dataIp}:8222/healthz",
					TimeoutSeconds: 5, IntervalSeconds: 10, StartSeconds: 30,
				},
			},
		},
	}
}

// HaveNATS says what is missing to run NATS, or "".
func HaveNATS() string {
	if _, err := os.Stat(NATSServer); err != nil {
		return NATSServer + " is missing (apt-get install nats-server)"
	}
	return ""
}

// NATSVersion returns the installed nats-server's version, e.g. "2.9.10".
func NATSVersion(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(NATSServer, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", NATSServer, err)
	}
	v := strings.TrimSpace(string(out))
	if i := strings.LastIndex(v, "v"); i >= 0 {
		v = v[i+1:]
	}
	return v
}

// NATSPackage builds admq-nats-V<version>-x86.tar.gz in dir from Debian's
// nats-server and returns its path.
func NATSPackage(t testing.TB, dir string) string {
	t.Helper()
	if why := HaveNATS(); why != "" {
		t.Fatal(why)
	}
	v := NATSVersion(t)
	files := []Entry{
		{Name: "bin/nats-server", Data: readFile(t, NATSServer), Mode: 0o755},
		{Name: "conf/nats.conf", Data: []byte(natsConf)},
	}
	return build(t, dir, "admq-nats-V"+v+"-x86.tar.gz", NATSManifest(v), files)
}

// NATSNumRoutes returns num_routes of /routez on the host's monitoring port.
func NATSNumRoutes(ctx context.Context, host string) (int, error) {
	var rz struct {
		NumRoutes int `json:"num_routes"`
	}
	err := getJSON(ctx, "http://"+net.JoinHostPort(host, fmt.Sprint(NATSMonitorPort))+"/routez", &rz)
	return rz.NumRoutes, err
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// NATSConn is a minimal client of the NATS text protocol.
type NATSConn struct {
	c net.Conn
	r *bufio.Reader
}

// DialNATS connects to addr and completes the handshake.
func DialNATS(addr string) (*NATSConn, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	n := &NATSConn{c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := n.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		c.Close()
		return nil, fmt.Errorf("nats %s: want INFO, got %q: %v", addr, line, err)
	}
	if err := n.send(`CONNECT {"verbose":false,"pedantic":false,"name":"admq-test"}` + "\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	if err := n.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	return n, nil
}

func (n *NATSConn) send(s string) error {
	n.c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(n.c, s)
	return err
}

// Flush sends PING and waits for PONG, answering the server's PINGs.
func (n *NATSConn) Flush() error {
	if err := n.send("PING\r\n"); err != nil {
		return err
	}
	for {
		line, err := n.r.ReadString('\n')
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "PONG"):
			return nil
		case strings.HasPrefix(line, "PING"):
			if err := n.send("PONG\r\n"); err != nil {
				return err
			}
		case strings.HasPrefix(line, "-ERR"):
			return fmt.Errorf("nats: %s", strings.TrimSpace(line))
		}
	}
}

// Sub subscribes to subject with sid.
func (n *NATSConn) Sub(subject, sid string) error {
	if err := n.send("SUB " + subject + " " + sid + "\r\n"); err != nil {
		return err
	}
	return n.Flush()
}

// Pub publishes payload on subject.
func (n *NATSConn) Pub(subject, payload string) error {
	if err := n.send(fmt.Sprintf("PUB %s %d\r\n%s\r\n", subject, len(payload), payload)); err != nil {
		return err
	}
	return n.Flush()
}

// Next waits up to timeout for a message and returns its subject and
// payload.
func (n *NATSConn) Next(timeout time.Duration) (subject, payload string, err error) {
	n.c.SetDeadline(time.Now().Add(timeout))
	for {
		line, err := n.r.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		switch {
		case strings.HasPrefix(line, "PING"):
			if _, err := io.WriteString(n.c, "PONG\r\n"); err != nil {
				return "", "", err
			}
		case strings.HasPrefix(line, "MSG "):
			f := strings.Fields(line) // MSG subject sid [reply] size
			var size int
			if _, err := fmt.Sscan(f[len(f)-1], &size); err != nil {
				return "", "", fmt.Errorf("nats: bad MSG line %q", line)
			}
			body := make([]byte, size+2)
			if _, err := io.ReadFull(n.r, body); err != nil {
				return "", "", err
			}
			return f[1], string(body[:size]), nil
		case strings.HasPrefix(line, "-ERR"):
			return "", "", fmt.Errorf("nats: %s", strings.TrimSpace(line))
		}
	}
}

// Close closes the connection.
func (n *NATSConn) Close() error { return n.c.Close() }
