// Command admq-manager serves the ADMQ console API and the agent tunnel.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/admq/admq-manager/internal/logx"
	"github.com/admq/admq-manager/internal/version"
	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/manager/tunnel"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "admq-manager:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg := manager.DefaultConfig()
	fs := flag.NewFlagSet("admq-manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("ADMQ_DATA_DIR", cfg.DataDir), "directory for the database, CA and secrets (env ADMQ_DATA_DIR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", envOr("ADMQ_HTTP_ADDR", cfg.HTTPAddr), "console API listen address (env ADMQ_HTTP_ADDR)")
	fs.StringVar(&cfg.TunnelAddr, "tunnel-addr", envOr("ADMQ_TUNNEL_ADDR", cfg.TunnelAddr), "agent tunnel listen address (env ADMQ_TUNNEL_ADDR)")
	fs.StringVar(&cfg.AdminPassword, "admin-password", envOr("ADMQ_ADMIN_PASSWORD", ""), "first admin's password, used only when the database is created (env ADMQ_ADMIN_PASSWORD)")
	nodeID := fs.String("node-id", envOr("ADMQ_NODE_ID", strconv.FormatInt(cfg.NodeID, 10)), "id node number 0-1023, distinct per manager sharing a database (env ADMQ_NODE_ID)")
	fs.StringVar(&cfg.AgentDir, "agent-dir", envOr("ADMQ_AGENT_DIR", cfg.AgentDir), "directory of the agent binaries SSH bootstrap uploads: admq-agent-linux-amd64, admq-agent-linux-arm64 (env ADMQ_AGENT_DIR)")
	fs.StringVar(&cfg.AgentServiceName, "agent-service-name", envOr("ADMQ_AGENT_SERVICE_NAME", cfg.AgentServiceName), "agent service name on bootstrapped servers; {managerIp} is replaced by the server's address (env ADMQ_AGENT_SERVICE_NAME)")
	fs.StringVar(&cfg.AdvertiseTunnelAddr, "advertise-tunnel-addr", envOr("ADMQ_ADVERTISE_TUNNEL_ADDR", ""), "host:port bootstrapped agents dial; empty: the address the manager reached the server from, with the tunnel port (env ADMQ_ADVERTISE_TUNNEL_ADDR)")
	metricsInterval := fs.String("metrics-interval", envOr("ADMQ_METRICS_INTERVAL", cfg.Tunnel.MetricsInterval.String()), "how often agents report host metrics for /metrics/fleet (env ADMQ_METRICS_INTERVAL)")
	handshakeRate := fs.String("tunnel-handshake-rate", envOr("ADMQ_TUNNEL_HANDSHAKE_RATE", strconv.Itoa(tunnel.DefaultHandshakeRate)), "agent TLS handshakes begun per second at most; more wait their turn (up to 4s) or are turned away to back off; 0: no limit (env ADMQ_TUNNEL_HANDSHAKE_RATE)")
	sshDialTimeout := fs.String("ssh-dial-timeout", envOr("ADMQ_SSH_DIAL_TIMEOUT", cfg.SSHDialTimeout.String()), "bound on connecting to a server's SSH port (env ADMQ_SSH_DIAL_TIMEOUT)")
	onlineTimeout := fs.String("agent-online-timeout", envOr("ADMQ_AGENT_ONLINE_TIMEOUT", cfg.AgentOnlineTimeout.String()), "how long a bootstrapped agent has to come online (env ADMQ_AGENT_ONLINE_TIMEOUT)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", envOr("ADMQ_TLS_CERT", ""), "PEM certificate (chain) of the console API; with --tls-key it is served over TLS 1.2+, else over plain HTTP (env ADMQ_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", envOr("ADMQ_TLS_KEY", ""), "PEM private key of --tls-cert (env ADMQ_TLS_KEY)")
	tlsHosts := fs.String("tls-hosts", envOr("ADMQ_TLS_HOSTS", ""), "extra comma-separated names/IPs for the tunnel certificate (env ADMQ_TLS_HOSTS)")
	maxPkg := fs.String("max-package-size", envOr("ADMQ_MAX_PACKAGE_SIZE", strconv.FormatInt(cfg.MaxPackageSize, 10)), "largest package file an upload may send, in bytes (env ADMQ_MAX_PACKAGE_SIZE)")
	fs.StringVar(&cfg.Env, "env", envOr("ADMQ_ENV", cfg.Env), "environment name of the Apollo-compatible Open API at /openapi/v1; case-insensitive, PROD is PRO (env ADMQ_ENV)")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", envOr("ADMQ_PPROF_ADDR", ""), "serve Go runtime profiles at http://ADDR/debug/pprof/; loopback addresses only; empty: off (env ADMQ_PPROF_ADDR)")
	namespaceLock := fs.String("namespace-lock", envOr("ADMQ_NAMESPACE_LOCK", "false"), "Apollo's namespace lock in the Open API: the first editor of a namespace since its last release holds it and may not release it (env ADMQ_NAMESPACE_LOCK)")
	logFormat := fs.String("log-format", envOr("ADMQ_LOG_FORMAT", "text"), "log format: text or json (env ADMQ_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr("ADMQ_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env ADMQ_LOG_LEVEL)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Version)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	lock, err := strconv.ParseBool(*namespaceLock)
	if err != nil {
		return fmt.Errorf("--namespace-lock %q: want true or false", *namespaceLock)
	}
	cfg.NamespaceLock = lock
	maxSize, err := strconv.ParseInt(*maxPkg, 10, 64)
	if err != nil || maxSize <= 0 {
		return fmt.Errorf("--max-package-size %q: want a positive number of bytes", *maxPkg)
	}
	cfg.MaxPackageSize = maxSize
	n, err := strconv.ParseInt(*nodeID, 10, 64)
	if err != nil {
		return fmt.Errorf("--node-id %q: %w", *nodeID, err)
	}
	cfg.NodeID = n
	rateN, err := strconv.Atoi(*handshakeRate)
	switch {
	case err != nil || rateN < 0:
		return fmt.Errorf("--tunnel-handshake-rate %q: want handshakes per second, 0 for no limit", *handshakeRate)
	case rateN == 0:
		cfg.Tunnel.HandshakeRate = -1 // no limit
	default:
		cfg.Tunnel.HandshakeRate = rateN
	}
	for _, d := range []struct {
		flag string
		v    string
		dst  *time.Duration
	}{
		{"--ssh-dial-timeout", *sshDialTimeout, &cfg.SSHDialTimeout},
		{"--agent-online-timeout", *onlineTimeout, &cfg.AgentOnlineTimeout},
		{"--metrics-interval", *metricsInterval, &cfg.Tunnel.MetricsInterval},
	} {
		if *d.dst, err = time.ParseDuration(d.v); err != nil || *d.dst <= 0 {
			return fmt.Errorf("%s %q: want a positive duration such as 30s", d.flag, d.v)
		}
	}
	for _, h := range strings.Split(*tlsHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.TLSHosts = append(cfg.TLSHosts, h)
		}
	}
	log, err := logx.New(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	m, err := manager.Open(ctx, cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	if m.AdminPassword != "" && cfg.AdminPassword == "" {
		// Shown this once; only its bcrypt hash is stored.
		fmt.Fprintf(stdout, "admq-manager: created user \"admin\" with password %s (shown once; change it with PUT /admq-manager/user/password)\n", m.AdminPassword)
	}
	fmt.Fprintf(stdout, "admq-manager: console %s  tunnel %s  CA pin %s\n", m.ConsoleURL(), m.TunnelAddr(), m.CAPin)
	return m.Run(ctx)
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
