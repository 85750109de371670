// Package manager wires admq-manager together: the store, the CA, the agent
// tunnel, the domain services and the console API.
package manager

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/admq/admq-manager/internal/dirlock"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/nodedir"
	"github.com/admq/admq-manager/internal/version"
	"github.com/admq/admq-manager/manager/api"
	"github.com/admq/admq-manager/manager/apollo"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/bootstrap"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/console"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	"github.com/admq/admq-manager/manager/fleetop"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/pki"
	"github.com/admq/admq-manager/manager/profiling"
	"github.com/admq/admq-manager/manager/sealed"
	"github.com/admq/admq-manager/manager/store"
	"github.com/admq/admq-manager/manager/tunnel"
)

// Config is the manager's whole configuration.
type Config struct {
	// DataDir holds the database, the CA, the JWT secret and secret.key,
	// which seals kept SSH credentials (default ./data).
	DataDir string
	// HTTPAddr is the console API's listen address (default :12305).
	HTTPAddr string
	// TunnelAddr is the agents' listen address (default :12306).
	TunnelAddr string
	// AdminPassword is the first admin's password, used only when the
	// database is created; empty: generate one and print it once.
	AdminPassword string
	// NodeID distinguishes managers sharing a database in ids (default 1).
	NodeID int64
	// TokenTTL is how long a console login lasts (default 12h).
	TokenTTL time.Duration
	// AgentCertValidity is how long agent certificates last (default 1 year).
	AgentCertValidity time.Duration
	// BcryptCost is the cost of password hashes (default bcrypt.DefaultCost).
	BcryptCost int
	// TLSHosts are extra names and addresses for the tunnel certificate.
	TLSHosts []string
	// TLSCert and TLSKey, both or neither, are PEM files of the console's
	// certificate (chain) and key: the console API and /metrics are then
	// served over TLS 1.2+ (see api.TLSConfig). Empty (the default): plain
	// HTTP, which belongs on a loopback address or behind a TLS proxy.
	TLSCert string
	TLSKey  string
	// PresenceFlush is how often agent presence is written (default 1s).
	PresenceFlush time.Duration
	// PresenceRefresh is how often the row of a connected agent whose facts
	// have not moved is written all the same: its last seen time, and its
	// memory and disk figures if they moved a little (default 5m; see
	// fleet.PresenceTracker).
	PresenceRefresh time.Duration
	// ShutdownGrace bounds the drain of HTTP requests on shutdown (default 10s).
	ShutdownGrace time.Duration
	// Tunnel tunes the agent tunnel; zero fields take its defaults. Its
	// MetricsInterval (default 15s, at least 1s) is how often agents report
	// host metrics; a server's admq_node_up and serverExporterStatus drop to
	// 0 when three intervals pass without one.
	Tunnel tunnel.Config

	// AgentDir holds the agent binaries SSH bootstrap uploads, named
	// admq-agent-linux-amd64 and admq-agent-linux-arm64 (default
	// /usr/lib/admq-manager/agents).
	AgentDir string
	// AgentServiceName is the agent's service name on bootstrapped servers;
	// "{managerIp}" in it becomes the server's address with '.' and ':' as
	// '-' (default "admq-agent").
	AgentServiceName string
	// AdvertiseTunnelAddr is the tunnel address bootstrapped agents dial
	// (host:port). Empty: the address the manager reached the server's SSH
	// from, with the tunnel's port.
	AdvertiseTunnelAddr string
	// SSHDialTimeout bounds connecting to a server's SSH port (default 10s).
	SSHDialTimeout time.Duration
	// AgentOnlineTimeout is how long a bootstrapped agent has to come online
	// before the bootstrap is undone (default 60s).
	AgentOnlineTimeout time.Duration
	// MaxPackageSize caps an uploaded package file in bytes (default 2 GiB).
	MaxPackageSize int64
	// Env is the environment name the Apollo-compatible Open API serves
	// (default PRO; matched as Apollo does: case-insensitive, PROD is PRO).
	Env string
	// NamespaceLock switches on Apollo's namespace lock in the Open API:
	// the first editor of a namespace since its last release holds it, and
	// may not release their own change (default off).
	NamespaceLock bool
	// PprofAddr, if set, serves Go's runtime profiles at
	// http://PprofAddr/debug/pprof/; it must be a loopback address
	// (default empty: off).
	PprofAddr string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:            "./data",
		HTTPAddr:           ":12305",
		TunnelAddr:         ":12306",
		NodeID:             1,
		TokenTTL:           12 * time.Hour,
		BcryptCost:         bcrypt.DefaultCost,
		AgentCertValidity:  365 * 24 * time.Hour,
		PresenceFlush:      time.Second,
		PresenceRefresh:    fleet.DefaultPresenceRefresh,
		ShutdownGrace:      10 * time.Second,
		Tunnel:             tunnel.DefaultConfig(),
		AgentDir:           bootstrap.DefaultAgentDir,
		AgentServiceName:   bootstrap.DefaultServiceName,
		SSHDialTimeout:     10 * time.Second,
		AgentOnlineTimeout: 60 * time.Second,
		MaxPackageSize:     pkg.DefaultMaxSize,
		Env:                apollo.DefaultEnv,
	}
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("data dir is required")
	case c.NodeID < 0 || c.NodeID > 1023:
		return fmt.Errorf("node id %d: want 0-1023", c.NodeID)
	case c.TokenTTL < time.Minute:
		return fmt.Errorf("token ttl %v: want at least a minute", c.TokenTTL)
	case c.AgentCertValidity < time.Hour:
		return fmt.Errorf("agent cert validity %v: want at least an hour", c.AgentCertValidity)
	case c.PresenceFlush <= 0 || c.PresenceRefresh <= 0 || c.ShutdownGrace <= 0:
		return errors.New("presence flush, presence refresh and shutdown grace must be positive")
	case c.MaxPackageSize <= 0:
		return errors.New("max package size must be positive")
	case c.Tunnel.MetricsInterval < 0 || (c.Tunnel.MetricsInterval > 0 && c.Tunnel.MetricsInterval < time.Second):
		return fmt.Errorf("metrics interval %v: want at least 1s", c.Tunnel.MetricsInterval)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("console TLS needs both a certificate and a key file")
	}
	if c.SSHDialTimeout < 0 || c.AgentOnlineTimeout < 0 {
		return errors.New("SSH dial timeout and agent online timeout must not be negative")
	}
	if _, err := apollo.ValidateEnv(c.Env); err != nil {
		return err
	}
	if err := c.bootstrapConfig(1).Validate(); err != nil {
		return err
	}
	if c.AdminPassword != "" && (len(c.AdminPassword) < 8 || len(c.AdminPassword) > 72) {
		return errors.New("admin password must be 8 to 72 bytes")
	}
	if c.PprofAddr != "" {
		if err := profiling.CheckAddr(c.PprofAddr); err != nil {
			return err
		}
	}
	for _, a := range []string{c.HTTPAddr, c.TunnelAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("listen address %q: %w", a, err)
		}
	}
	return nil
}

// bootstrapConfig is the SSH bootstrap's part of c.
func (c Config) bootstrapConfig(tunnelPort int) bootstrap.Config {
	return bootstrap.Config{
		AgentDir:      c.AgentDir,
		ServiceName:   c.AgentServiceName,
		TunnelAddr:    c.AdvertiseTunnelAddr,
		TunnelPort:    tunnelPort,
		DialTimeout:   c.SSHDialTimeout,
		OnlineTimeout: c.AgentOnlineTimeout,
	}
}

// Manager is an opened manager, listening but not yet serving.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	db       *store.DB
	hub      *tunnel.Hub
	api      *api.API
	deploy   *deploy.Engine
	presence *fleet.PresenceTracker
	httpLn   net.Listener
	tunLn    net.Listener
	pprofLn  net.Listener // nil: profiles not served
	// lock is held on the data dir while the manager runs.
	lock     *dirlock.Lock
	fleetOps *fleetop.Service
	// AdminPassword is the generated first-admin password, set only on the
	// start that created the database.
	AdminPassword string
	// CAPin is the pin agents need to trust this manager.
	CAPin string
}

// Open prepares a manager: data dir, database (migrated), CA, secrets, the
// first admin on a new database, and both listeners.
func Open(ctx context.Context, cfg Config, log *slog.Logger, reg *prometheus.Registry) (_ *Manager, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Paths the manager reports (package files, logs) are absolute.
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	m := &Manager{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	if m.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	m.db, err = store.Open(ctx, filepath.Join(cfg.DataDir, "admq.db"))
	if err != nil {
		return nil, err
	}
	ca, err := pki.Open(filepath.Join(cfg.DataDir, "pki"), time.Now)
	if err != nil {
		return nil, err
	}
	m.CAPin = ca.Pin()
	secret, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, "jwt.key"))
	if err != nil {
		return nil, err
	}
	// Seals SSH credentials kept in the database.
	sealKey, err := sealed.LoadOrCreateKey(filepath.Join(cfg.DataDir, "secret.key"))
	if err != nil {
		return nil, err
	}
	box, err := sealed.New(sealKey)
	if err != nil {
		return nil, err
	}
	gen, err := ids.NewGenerator(cfg.NodeID)
	if err != nil {
		return nil, err
	}
	authSvc, err := auth.NewService(m.db, secret, cfg.TokenTTL, cfg.BcryptCost, gen, time.Now)
	if err != nil {
		return nil, err
	}
	if m.AdminPassword, err = authSvc.EnsureAdmin(ctx, cfg.AdminPassword); err != nil {
		return nil, err
	}
	if err := m.db.MarkAllOffline(ctx, time.Now()); err != nil {
		return nil, err
	}

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.presence = fleet.NewPresenceTracker(m.db, time.Now, cfg.PresenceFlush, log.With("component", "presence"))
	m.presence.SetRefresh(cfg.PresenceRefresh)
	// What the tunnel asks of the fleet while agents connect (areas,
	// servers, certificates) comes from the store; the fleet service,
	// which reaches agents through the tunnel, is built after it.
	directory := fleet.NewDirectory(m.db)
	// Every server's host metrics, served at /metrics/fleet from a registry
	// of their own so that the manager's /metrics stays small.
	fleetReg := prometheus.NewRegistry()
	metricsInterval := cfg.Tunnel.MetricsInterval
	if metricsInterval <= 0 {
		metricsInterval = tunnel.DefaultConfig().MetricsInterval
	}
	fleetMetrics := fleetmetrics.New(fleetmetrics.Config{Interval: metricsInterval}, directory, fleetReg)
	enrollSvc := enroll.NewService(m.db, directory, ca, gen, time.Now, cfg.AgentCertValidity, log.With("component", "enroll"))
	pkgSvc := pkg.NewService(m.db, filepath.Join(cfg.DataDir, "packages"), cfg.MaxPackageSize, gen, time.Now)
	if err := pkgSvc.RemoveStaleUploads(); err != nil {
		return nil, err
	}
	clusterSvc := cluster.NewService(m.db, pkgSvc, gen, time.Now)
	clusterSvc.ProtectDir(cfg.DataDir, "the manager's data dir")
	configSvc := config.NewService(m.db, pkgSvc, gen, time.Now)

	hosts := append(localHosts(), cfg.TLSHosts...)
	tlsCfg, err := ca.ServerTLSConfig(hosts)
	if err != nil {
		return nil, err
	}
	// Agents resume their TLS sessions across restarts with tickets whose
	// keys come from a secret beside the CA key.
	tunnelCfg := cfg.Tunnel
	if tunnelCfg.TicketSecret, err = pki.TicketSecret(filepath.Join(cfg.DataDir, "pki")); err != nil {
		return nil, err
	}
	m.hub = tunnel.New(tunnelCfg, tlsCfg, tunnel.Deps{
		Enroller: enrollSvc,
		// An agent coming online also gets the node removals queued for it
		// (m.deploy is set below, before the hub serves).
		Presence: connectHook{m.presence, func(id ids.ID) { m.deploy.AgentConnected(id) }},
		Certs:    directory,
		Metrics:  fleetMetrics,
		AgentID:  pki.AgentID,
	}, log.With("component", "tunnel"), reg)
	fleetService := fleet.NewService(m.db, m.presence, m.hub, gen, time.Now)
	fleetService.ForgetOnDelete(fleetMetrics)
	if m.AdminPassword != "" {
		// A new database: give it the default area.
		if err := fleetService.EnsureDefaultArea(ctx); err != nil {
			return nil, err
		}
	}
	// Deployments: jobs a previous run left unfinished are failed now.
	m.deploy = deploy.New(deploy.Deps{
		Store: m.db, Clusters: clusterSvc, Configs: configSvc, Packages: pkgSvc, Agents: m.hub, Cleanups: m.db,
		IDs: gen, Log: log.With("component", "deploy"), Registerer: reg, ErrorCode: api.JobError,
	})
	if err := m.deploy.Recover(ctx); err != nil {
		return nil, err
	}

	if m.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("console listener: %w", err)
	}
	if cfg.TLSCert != "" {
		tlsCfg, err := api.TLSConfig(cfg.TLSCert, cfg.TLSKey, log.With("component", "api"))
		if err != nil {
			return nil, err
		}
		m.httpLn = tls.NewListener(m.httpLn, tlsCfg)
	} else if ip := m.httpLn.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Warn("the console API is served over plain HTTP on a non-loopback address: passwords and tokens cross the network in clear; "+
			"give --tls-cert and --tls-key, or bind --http-addr to 127.0.0.1 behind a TLS proxy", "http", m.httpLn.Addr().String())
	}
	if m.tunLn, err = net.Listen("tcp", cfg.TunnelAddr); err != nil {
		return nil, fmt.Errorf("tunnel listener: %w", err)
	}
	if cfg.PprofAddr != "" {
		if m.pprofLn, err = profiling.Listen(cfg.PprofAddr); err != nil {
			return nil, err
		}
	}
	bootLog := log.With("component", "bootstrap")
	boot, err := bootstrap.New(cfg.bootstrapConfig(m.tunLn.Addr().(*net.TCPAddr).Port), bootstrap.Deps{
		Tokens: enrollSvc, Agents: m.hub, HostKeys: m.db, Now: time.Now, Log: bootLog,
	})
	if err != nil {
		return nil, err
	}
	fleetService.UseBootstrap(boot, box, m.deploy)
	if missing := boot.MissingAgents(); len(missing) > 0 {
		bootLog.Warn("agent directory lacks binaries; SSH bootstrap of such servers will fail", "agentDir", cfg.AgentDir, "missing", missing)
	}
	// The Apollo-compatible Open API, on the console's port.
	catalog := apollo.NewCatalog(m.db, configSvc)
	consumers := consumer.NewService(m.db, catalog, gen, time.Now)
	env, _ := apollo.ValidateEnv(cfg.Env)
	openAPI := apollo.New(apollo.Deps{
		Env: env, NamespaceLock: cfg.NamespaceLock, Locks: m.db,
		Consumers: consumers, Users: m.db, Catalog: catalog, Areas: fleetService, Audit: m.db,
		Items: apollo.NewConfigItems(configSvc), Releases: apollo.NewConfigReleases(m.deploy, configSvc, m.db),
		IDs: gen, Now: time.Now, Log: log.With("component", "apollo"), Registerer: reg,
	})
	web, err := console.New()
	if err != nil {
		return nil, err
	}
	m.fleetOps = fleetop.NewService(fleetop.Deps{
		Servers: fleetService, Agents: m.hub, IDs: gen, Now: time.Now,
		ClusterNodes: func(ctx context.Context, clusterID ids.ID) ([]fleetop.TargetNode, error) {
			if _, err := clusterSvc.Cluster(ctx, clusterID); err != nil {
				return nil, err
			}
			nodes, err := clusterSvc.AllNodes(ctx, clusterID)
			out := make([]fleetop.TargetNode, len(nodes))
			for i, n := range nodes {
				out[i] = fleetop.TargetNode{ID: n.ID, ServerID: n.ServerID, Component: n.Component}
			}
			return out, err
		},
		Node: func(ctx context.Context, id ids.ID) (fleetop.TargetNode, error) {
			n, err := clusterSvc.Node(ctx, id)
			return fleetop.TargetNode{ID: n.ID, ServerID: n.ServerID, Component: n.Component}, err
		},
		NodeCommand: func(ctx context.Context, id ids.ID, cmd string) (fleetop.NodeResult, error) {
			st, err := m.deploy.Command(ctx, id, cmd)
			return fleetop.NodeResult{RunState: deploy.RunState(st), PID: st.PID}, err
		},
		NodeLog: m.deploy.Logs,
	})
	m.api = api.New(api.Deps{
		FleetOps:  m.fleetOps,
		Consumers: consumers, OpenAPIv1: openAPI,
		Auth: authSvc, Fleet: fleetService, Enroll: enrollSvc, Audit: m.db, Packages: pkgSvc, Clusters: clusterSvc, Config: configSvc,
		IDs: gen, Now: time.Now, Log: log.With("component", "api"),
		Registerer: reg, Gatherer: reg,
		TunnelPort:      m.tunLn.Addr().(*net.TCPAddr).Port,
		AgentsConnected: m.hub.Connected,
		Exporters:       fleetMetrics,
		// One scrape of every server is large: a few at a time.
		FleetScrape:  fleetMetrics.Handler(4),
		Deploy:       m.deploy,
		Console:      web,
		FleetMetrics: fleetMetrics,
	})
	return m, nil
}

// connectHook is the presence tracker that also calls connected when an
// agent's session comes up.
type connectHook struct {
	*fleet.PresenceTracker
	connected func(ids.ID)
}

// Connected records the session and calls the hook.
func (h connectHook) Connected(id ids.ID) {
	h.PresenceTracker.Connected(id)
	h.connected(id)
}

// HTTPAddr is the console API's bound address.
func (m *Manager) HTTPAddr() string { return m.httpLn.Addr().String() }

// ConsoleURL is the console API's base URL: https when it is served over TLS.
func (m *Manager) ConsoleURL() string {
	scheme := "http"
	if m.cfg.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + m.HTTPAddr() + api.Prefix
}

// TunnelAddr is the tunnel's bound address.
func (m *Manager) TunnelAddr() string { return m.tunLn.Addr().String() }

// PprofAddr is the profiles' bound address, or "" when they are not served.
func (m *Manager) PprofAddr() string {
	if m.pprofLn == nil {
		return ""
	}
	return m.pprofLn.Addr().String()
}

// Run serves until ctx is done, then shuts down in order: stop taking
// requests and sessions, flush presence, close the database.
func (m *Manager) Run(ctx context.Context) error {
	defer m.close()
	m.log.Info("admq-manager serving", "version", version.Version, "http", m.HTTPAddr(), "console", m.ConsoleURL(), "tunnel", m.TunnelAddr(), "dataDir", m.cfg.DataDir)
	g, gctx := errgroup.WithContext(ctx)
	// The tunnel closes only once the deploy engine and the cleanup runner
	// have stopped: a job cut short by shutdown then ends its step as
	// "manager stopping", not as its agent having gone offline.
	tunCtx, stopTunnel := context.WithCancel(context.WithoutCancel(gctx))
	defer stopTunnel()
	var engines sync.WaitGroup
	engines.Add(3)
	go func() { engines.Wait(); stopTunnel() }()
	g.Go(func() error {
		defer engines.Done()
		<-gctx.Done()
		m.fleetOps.Close() // what is not done says the manager stopped
		return nil
	})
	g.Go(func() error { return m.api.Serve(gctx, m.httpLn, m.cfg.ShutdownGrace) })
	g.Go(func() error { return m.hub.Serve(tunCtx, m.tunLn) })
	g.Go(func() error { return m.presence.Run(gctx) })
	if m.pprofLn != nil {
		m.log.Info("serving runtime profiles", "url", "http://"+m.PprofAddr()+"/debug/pprof/")
		g.Go(func() error { return profiling.Serve(gctx, m.pprofLn, m.log.With("component", "pprof")) })
	}
	g.Go(func() error { defer engines.Done(); return m.deploy.Run(gctx) })
	g.Go(func() error { defer engines.Done(); return m.deploy.RunCleanups(gctx) })
	err := g.Wait()
	// Sessions are closed now; their disconnects are pending. Write them.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	m.presence.Flush(fctx)
	if err != nil && ctx.Err() == nil {
		return err
	}
	m.log.Info("admq-manager stopped")
	return nil
}

func (m *Manager) close() {
	if m.httpLn != nil {
		m.httpLn.Close()
	}
	if m.tunLn != nil {
		m.tunLn.Close()
	}
	if m.pprofLn != nil {
		m.pprofLn.Close()
	}
	if m.db != nil {
		if err := m.db.Close(); err != nil {
			m.log.Warn("close database", "err", err)
		}
		m.db = nil
	}
	if err := m.lock.Release(); err != nil {
		m.log.Warn("release data dir lock", "err", err)
	}
	m.lock = nil
}

// lockDataDir takes the data dir for this manager. One manager per data
// dir: a second one would sweep away the first one's uploads and fail its
// running jobs, so it is refused at once, naming the holder.
func lockDataDir(dir string) (*dirlock.Lock, error) {
	l, err := dirlock.Acquire(filepath.Join(dir, nodedir.ManagerLockName))
	var held *dirlock.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("data dir %s is in use by another admq-manager (%s): stop it first or use another --data-dir", dir, held.Holder())
	}
	return l, err
}

// loadOrCreateSecret returns the 32-byte secret in path, creating it (0600)
// on first start.
func loadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		secret, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(secret) < 32 {
			return nil, fmt.Errorf("jwt secret %s is damaged: remove it to generate a new one (all logins end)", path)
		}
		return secret, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read jwt secret: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate jwt secret: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	if _, err := io.WriteString(f, hex.EncodeToString(secret)+"\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	return secret, f.Close()
}

// localHosts names this host in the tunnel certificate. Agents verify the
// manager by its CA, not by name, so this is for operators' tools only.
func localHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}
