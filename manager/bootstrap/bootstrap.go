// Package bootstrap installs admq-agent on a server over SSH: it logs in
// with the operator's password or key (checking the host key on trust on
// first use), detects the OS and architecture, uploads the matching agent
// binary from the manager's agent directory, installs it as a service with
// a single-use join token bound to the server, and waits until the agent is
// online. A bootstrap that fails undoes what it did on the host and revokes
// its token.
//
// The manager needs SSH only for this; afterwards it talks to the server
// only through the tunnel the agent dials, and port 22 may be closed.
package bootstrap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	xfer "github.com/admq/admq-manager/internal/progress"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
)

// Config tunes bootstraps. Zero durations take the defaults.
type Config struct {
	// AgentDir holds agent binaries named admq-agent-<os>-<arch>, e.g.
	// admq-agent-linux-amd64 and admq-agent-linux-arm64 (default
	// /usr/lib/admq-manager/agents).
	AgentDir string
	// ServiceName is the agent's service name on the host; "{managerIp}" in
	// it is replaced by the server's address with '.' and ':' as '-'
	// (default "admq-agent").
	ServiceName string
	// TunnelAddr is the tunnel address agents are told to dial. Empty: the
	// address the manager's SSH connection came from, with TunnelPort.
	TunnelAddr string
	// TunnelPort is the port the tunnel listens on.
	TunnelPort int
	// DialTimeout bounds the TCP connect to the SSH port (default 10s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds the SSH handshake and login (default 30s).
	HandshakeTimeout time.Duration
	// CommandTimeout bounds each command on the host, the upload included
	// (default 5m).
	CommandTimeout time.Duration
	// OnlineTimeout is how long the installed agent has to come online
	// (default 60s).
	OnlineTimeout time.Duration
	// TokenTTL is the life of the bootstrap's join token (default 15m).
	TokenTTL time.Duration
}

// DefaultAgentDir is where packages install the agent binaries.
const DefaultAgentDir = "/usr/lib/admq-manager/agents"

// DefaultServiceName is the agent's service name on the host.
const DefaultServiceName = "admq-agent"

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		AgentDir:         DefaultAgentDir,
		ServiceName:      DefaultServiceName,
		DialTimeout:      10 * time.Second,
		HandshakeTimeout: 30 * time.Second,
		CommandTimeout:   5 * time.Minute,
		OnlineTimeout:    60 * time.Second,
		TokenTTL:         15 * time.Minute,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.AgentDir == "" {
		c.AgentDir = d.AgentDir
	}
	if c.ServiceName == "" {
		c.ServiceName = d.ServiceName
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.DialTimeout, &d.DialTimeout}, {&c.HandshakeTimeout, &d.HandshakeTimeout},
		{&c.CommandTimeout, &d.CommandTimeout}, {&c.OnlineTimeout, &d.OnlineTimeout},
		{&c.TokenTTL, &d.TokenTTL},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return c
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := expandServiceName(c.ServiceName, "192.0.2.1"); err != nil {
		return err
	}
	if c.TunnelAddr != "" {
		if _, _, err := net.SplitHostPort(c.TunnelAddr); err != nil {
			return fmt.Errorf("advertised tunnel address %q: %w", c.TunnelAddr, err)
		}
	}
	if c.TunnelAddr == "" && (c.TunnelPort < 1 || c.TunnelPort > 65535) {
		return fmt.Errorf("tunnel port %d: want 1-65535", c.TunnelPort)
	}
	if c.TokenTTL > enroll.MaxTokenTTL {
		return fmt.Errorf("bootstrap token ttl %v: at most %v", c.TokenTTL, enroll.MaxTokenTTL)
	}
	return nil
}

// Tokens issues and revokes join tokens: the enroll service.
type Tokens interface {
	CreateToken(ctx context.Context, spec enroll.TokenSpec) (enroll.IssuedToken, error)
	Revoke(ctx context.Context, id string) error
}

// Agents tells whether an agent is connected: the tunnel hub.
type Agents interface {
	Online(id ids.ID) bool
}

// Deps are what a Bootstrapper uses.
type Deps struct {
	Tokens   Tokens
	Agents   Agents
	HostKeys HostKeyStore
	Now      func() time.Time
	Log      *slog.Logger
}

// Bootstrapper installs agents over SSH. It is safe for concurrent use.
type Bootstrapper struct {
	cfg Config
	d   Deps
}

var _ fleet.Bootstrapper = (*Bootstrapper)(nil)

// New returns a Bootstrapper.
func New(cfg Config, d Deps) (*Bootstrapper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Bootstrapper{cfg: cfg.withDefaults(), d: d}, nil
}

// Steps of a bootstrap, as reported in errors (Error.Step,
// CommandError.Step); each belongs to one of fleet.BootstrapSteps, the
// steps a Progress hears (phaseOf).
const (
	stepPrepare   = "prepare"
	stepConnect   = "connect"
	stepDetect    = "detect platform"
	stepPrivilege = "check privileges"
	stepInspect   = "inspect host"
	stepUpload    = "upload agent binary"
	stepStateDir  = "create state directory"
	stepInstall   = "install agent service"
	stepOnline    = "wait for agent"
	stepUninstall = "uninstall agent service"
	stepRemove    = "remove agent files"
)

// phaseOf is the fleet.BootstrapSteps step that step belongs to.
func phaseOf(step string) string {
	switch step {
	case stepPrepare, stepConnect:
		return fleet.BootstrapConnect
	case stepDetect, stepPrivilege, stepInspect:
		return fleet.BootstrapDetect
	case stepUpload:
		return fleet.BootstrapUpload
	case stepStateDir, stepInstall:
		return fleet.BootstrapInstall
	}
	return fleet.BootstrapOnline
}

// uploadProgressEvery is how often a running upload tells how far it is.
var uploadProgressEvery = 250 * time.Millisecond

// CheckCredentials implements fleet.Bootstrapper: a private key must
// parse (and decrypt with the passphrase).
func (b *Bootstrapper) CheckCredentials(c fleet.SSHCredentials) error {
	_, err := authMethods(c)
	return err
}

// Bootstrap implements fleet.Bootstrapper: it installs the agent of srv
// and waits until it is online, telling p how each step goes.
func (b *Bootstrapper) Bootstrap(ctx context.Context, srv fleet.Server, creds fleet.SSHCredentials, requestedBy string, p fleet.Progress) (err error) {
	start := b.d.Now()
	addr := net.JoinHostPort(srv.ManagerIP, strconv.Itoa(srv.SSHPort))
	log := b.d.Log.With("server", srv.ID, "ssh", addr, "account", srv.Account)
	log.Info("bootstrap starting")
	step := stepPrepare
	var cleanup string
	p.Running(fleet.BootstrapConnect, fmt.Sprintf("logging in as %s to %s", srv.Account, addr))
	// began moves the bootstrap on to next; when next belongs to another
	// step, the step it was in is done (with done) and next's runs (with
	// running).
	began := func(next, done, running string) {
		if phaseOf(next) != phaseOf(step) {
			p.Done(phaseOf(step), done)
			p.Running(phaseOf(next), running)
		}
		step = next
	}
	defer func() {
		if err == nil {
			return
		}
		e := &Error{Step: step, Err: err, Cleanup: cleanup}
		err = e
		p.Failed(phaseOf(step), e.stepDetail())
		log.Warn("bootstrap failed", "step", step, "err", err, "took", b.d.Now().Sub(start).Round(time.Millisecond))
	}()

	auth, err := authMethods(creds)
	if err != nil {
		return err
	}
	service, err := expandServiceName(b.cfg.ServiceName, srv.ManagerIP)
	if err != nil {
		return err
	}
	l := newLayout(srv.ProgramDir, srv.DataDir, service)

	tok, err := b.d.Tokens.CreateToken(ctx, enroll.TokenSpec{
		Description: "SSH bootstrap of " + srv.ManagerIP,
		AreaID:      srv.AreaID,
		ServerID:    srv.ID,
		MaxUses:     1,
		TTL:         b.cfg.TokenTTL,
		CreatedBy:   requestedBy,
	})
	if err != nil {
		return fmt.Errorf("create join token: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		// The request may be gone; the token must die anyway.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := b.d.Tokens.Revoke(rctx, tok.ID); rerr != nil && !errors.Is(rerr, enroll.ErrTokenNotFound) {
			log.Error("revoke bootstrap token", "token", tok.ID, "err", rerr)
			err = errors.Join(err, fmt.Errorf("revoke join token %s: %w", tok.ID, rerr))
		}
	}()

	step = stepConnect
	var hostKey string
	client, err := dial(ctx, dialConfig{
		Address: addr, User: srv.Account, Auth: auth,
		DialTimeout: b.cfg.DialTimeout, HandshakeTimeout: b.cfg.HandshakeTimeout,
		HostKeys: b.d.HostKeys, Now: b.d.Now,
		Accepted: func(k HostKey, recorded bool) {
			if recorded {
				log.Info("recorded SSH host key on first use", "keyType", k.Type, "fingerprint", k.Fingerprint)
				hostKey = fmt.Sprintf("host key %s %s recorded on first use", k.Type, k.Fingerprint)
			} else {
				hostKey = fmt.Sprintf("host key %s %s matches the one recorded on %s", k.Type, k.Fingerprint, k.CreatedAt.UTC().Format(time.RFC3339))
			}
		},
	})
	if err != nil {
		return err
	}
	defer client.Close()
	r := &remote{
		client: client, password: creds.Password, timeout: b.cfg.CommandTimeout,
		secrets: []string{creds.Password, creds.Passphrase, tok.Secret},
	}

	began(stepDetect, fmt.Sprintf("logged in as %s to %s; %s", srv.Account, addr, hostKey), "")
	out, err := r.run(ctx, step, detectScript, nil)
	if err != nil {
		return err
	}
	plat, root, err := parseDetect(out)
	if err != nil {
		return err
	}
	bin, sum, size, err := b.agentBinary(plat)
	if err != nil {
		return err
	}

	began(stepPrivilege, "", "")
	if r.priv, err = choosePrivilege(ctx, r, root, srv.Account); err != nil {
		return err
	}

	began(stepInspect, "", "")
	out, err = r.runRoot(ctx, step, probeScript(l), nil)
	if err != nil {
		return err
	}
	probe, err := parseProbe(out)
	if err != nil {
		return &CommandError{Step: step, ExitStatus: 0, Stderr: err.Error()}
	}
	if len(probe.ServiceFiles) > 0 {
		return fmt.Errorf("%w: service %q is defined by %s; if it is a stale agent, uninstall it there (admq-agent uninstall --service-name %s) and retry",
			ErrAgentInstalled, service, strings.Join(probe.ServiceFiles, ", "), service)
	}

	// From here on the host changes; a failure undoes it.
	installing := false
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		cleanup = b.undo(cctx, r, l, probe, installing)
		if cleanup != "done" {
			log.Error("cleanup after failed bootstrap", "err", cleanup)
		}
	}()

	name := filepath.Base(bin)
	began(stepUpload, fmt.Sprintf("%s, %s; no agent service %q installed yet", plat, r.priv, service), xfer.Sending(name, 0, 0, size, 0))
	f, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAgentBinaryMissing, err)
	}
	defer f.Close()
	upStart := b.d.Now()
	up := &uploadReader{r: f, now: b.d.Now, last: upStart, report: func(at int64) {
		p.Running(fleet.BootstrapUpload, xfer.Sending(name, at, 0, size, b.d.Now().Sub(upStart)))
	}}
	if _, err = r.runRoot(ctx, step, uploadScript(l, sum), up); err != nil {
		return err
	}
	uploaded := fmt.Sprintf("sent %s (%d bytes) to %s%s; sha256 checked on the server",
		name, size, l.Binary, xfer.Rate(size, b.d.Now().Sub(upStart)))

	began(stepStateDir, uploaded, "")
	if _, err = r.runRoot(ctx, step, stateDirScript(l), nil); err != nil {
		return err
	}

	began(stepInstall, "", "")
	tunnel, err := b.tunnelAddr(client)
	if err != nil {
		return err
	}
	installing = true
	_, err = r.runRoot(ctx, step, installScript(l, installArgs{Manager: tunnel, AdvertiseIP: srv.ManagerIP}),
		strings.NewReader(tok.JoinString+"\n"))
	if err != nil {
		return err
	}

	began(stepOnline, fmt.Sprintf("service %s installed and started, state dir %s; its agent dials %s", service, l.StateDir, tunnel),
		fmt.Sprintf("waiting up to %v for the agent's session at %s", b.cfg.OnlineTimeout, tunnel))
	waitStart := b.d.Now()
	if err = b.waitOnline(ctx, srv.ID, tunnel); err != nil {
		return err
	}
	took := b.d.Now().Sub(start).Round(time.Millisecond)
	p.Done(fleet.BootstrapOnline, fmt.Sprintf("online %v after the service started (bootstrap took %v)",
		b.d.Now().Sub(waitStart).Round(time.Millisecond), took))
	log.Info("bootstrap done: agent online", "platform", plat, "service", service, "tunnel", tunnel, "took", took)
	return nil
}

// uploadReader reads the agent binary for its upload and reports how far
// it got, at most every uploadProgressEvery.
type uploadReader struct {
	r      io.Reader
	now    func() time.Time
	report func(at int64)
	at     int64
	last   time.Time
}

func (u *uploadReader) Read(b []byte) (int, error) {
	n, err := u.r.Read(b)
	u.at += int64(n)
	if now := u.now(); n > 0 && now.Sub(u.last) >= uploadProgressEvery {
		u.last = now
		u.report(u.at)
	}
	return n, err
}

// choosePrivilege finds how to become root: be root, sudo -n, or sudo -S
// with the SSH password.
func choosePrivilege(ctx context.Context, r *remote, root bool, account string) (privilege, error) {
	if root {
		return asRoot, nil
	}
	_, errN := r.run(ctx, "sudo -n true", "sudo -n true", nil)
	if errN == nil {
		return sudoNoPW, nil
	}
	var ce *CommandError
	if !errors.As(errN, &ce) {
		return 0, errN
	}
	if r.password == "" {
		return 0, &CommandError{Step: stepPrivilege, ExitStatus: ce.ExitStatus,
			Stderr: fmt.Sprintf("account %q is not root and cannot use sudo without a password: %s", account, ce.Stderr)}
	}
	_, errS := r.exec(ctx, "sudo -S true", "sudo -k -S -p '' true", strings.NewReader(r.password+"\n"))
	if errS == nil {
		return sudoWithPW, nil
	}
	if !errors.As(errS, &ce) {
		return 0, errS
	}
	return 0, &CommandError{Step: stepPrivilege, ExitStatus: ce.ExitStatus,
		Stderr: fmt.Sprintf("account %q is not root and cannot use sudo (neither sudo -n nor sudo -S with its password): %s", account, ce.Stderr)}
}

// undo removes what a failed bootstrap put on the host, best effort, and
// says how it went.
func (b *Bootstrapper) undo(ctx context.Context, r *remote, l layout, p probeResult, installed bool) string {
	var problems []string
	if installed {
		if _, err := r.runRoot(ctx, stepUninstall, uninstallScript(l), nil); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if _, err := r.runRoot(ctx, stepRemove, removeScript(l, p), nil); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return strings.Join(problems, "; ")
	}
	return "done"
}

// agentBinary returns the path, sha256 and size of the agent for p.
func (b *Bootstrapper) agentBinary(p platform) (string, string, int64, error) {
	path := filepath.Join(b.cfg.AgentDir, agentFile(p))
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", 0, fmt.Errorf("%w: the server is %s but %s does not exist (put admq-agent builds named %s in --agent-dir)",
			ErrAgentBinaryMissing, p, path, agentFile(p))
	}
	if err != nil {
		return "", "", 0, fmt.Errorf("%w: %v", ErrAgentBinaryMissing, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", "", 0, fmt.Errorf("%w: read %s: %v", ErrAgentBinaryMissing, path, err)
	}
	return path, hex.EncodeToString(h.Sum(nil)), n, nil
}

// tunnelAddr is the address the agent dials: the configured one, or the
// address this manager's SSH connection came from (which the host can
// reach) with the tunnel port.
func (b *Bootstrapper) tunnelAddr(c interface{ LocalAddr() net.Addr }) (string, error) {
	if b.cfg.TunnelAddr != "" {
		return b.cfg.TunnelAddr, nil
	}
	tcp, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok || tcp.IP == nil {
		return "", fmt.Errorf("cannot tell the manager's address from the SSH connection (%v); set the advertised tunnel address", c.LocalAddr())
	}
	ip := tcp.IP
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(b.cfg.TunnelPort)), nil
}

// waitOnline polls until the agent has a session.
func (b *Bootstrapper) waitOnline(ctx context.Context, id ids.ID, tunnel string) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.OnlineTimeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if b.d.Agents.Online(id) {
			return nil
		}
		select {
		case <-ctx.Done():
			if parent := context.Cause(ctx); !errors.Is(parent, context.DeadlineExceeded) {
				return fmt.Errorf("%w: stopped waiting: %v", ErrAgentTimeout, parent)
			}
			return fmt.Errorf("%w within %v: the service is installed and started, but no session from it reached the tunnel at %s (can the server reach that address? see the agent's log on the server)",
				ErrAgentTimeout, b.cfg.OnlineTimeout, tunnel)
		case <-t.C:
		}
	}
}

// ForgetHostKey implements fleet.Bootstrapper.
func (b *Bootstrapper) ForgetHostKey(ctx context.Context, ip string, port int) error {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if err := b.d.HostKeys.DeleteHostKey(ctx, addr); err != nil {
		return err
	}
	b.d.Log.Info("forgot SSH host key", "ssh", addr)
	return nil
}

// supported are the platforms agents are built for.
var supported = []platform{{"linux", "amd64"}, {"linux", "arm64"}}

// MissingAgents lists the agent binaries the agent directory lacks.
func (b *Bootstrapper) MissingAgents() []string {
	var missing []string
	for _, p := range supported {
		if _, err := os.Stat(filepath.Join(b.cfg.AgentDir, agentFile(p))); err != nil {
			missing = append(missing, agentFile(p))
		}
	}
	return missing
}
