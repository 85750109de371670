package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/paging"
)

// DefaultAreaCode is the code of the area created on first start.
const DefaultAreaCode = "default"

// Agents is the live side of the fleet: the tunnel hub.
type Agents interface {
	Online(id ids.ID) bool
	Disconnect(id ids.ID)
	Ping(ctx context.Context, id ids.ID) (time.Duration, string, error)
}

// Service manages areas and servers.
type Service struct {
	store    Store
	dir      Directory
	presence *PresenceTracker
	agents   Agents
	ids      *ids.Generator
	now      func() time.Time

	// Set by UseBootstrap; nil: servers can only wait for agents installed
	// by hand.
	bootstrap Bootstrapper
	sealer    Sealer
	jobs      BootstrapJobs
	// forgetters are told of deleted servers; set by ForgetOnDelete.
	forgetters []Forgetter
}

// Forgetter drops what another part of the manager keeps about a server,
// once the server is deleted.
type Forgetter interface {
	Forget(id ids.ID)
}

// ForgetOnDelete has DeleteServer tell f about every server it deletes.
// Call it before serving.
func (s *Service) ForgetOnDelete(f Forgetter) {
	s.forgetters = append(s.forgetters, f)
}

// NewService returns a Service.
func NewService(store Store, presence *PresenceTracker, agents Agents, gen *ids.Generator, now func() time.Time) *Service {
	return &Service{store: store, dir: NewDirectory(store), presence: presence, agents: agents, ids: gen, now: now}
}

var areaCodeRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// EnsureDefaultArea creates the default area if no area with its code exists.
func (s *Service) EnsureDefaultArea(ctx context.Context) error {
	_, err := s.store.AreaByCode(ctx, DefaultAreaCode)
	if !errors.Is(err, ErrAreaNotFound) {
		return err
	}
	_, err = s.CreateArea(ctx, DefaultAreaCode, "默认可用区")
	if errors.Is(err, ErrAreaExists) {
		return nil
	}
	return err
}

// CreateArea validates and stores a new area.
func (s *Service) CreateArea(ctx context.Context, code, name string) (Area, error) {
	if !areaCodeRe.MatchString(code) {
		return Area{}, invalid.Field("code", "1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit")
	}
	if err := invalid.Text("area", name, 1, 128); err != nil {
		return Area{}, err
	}
	now := s.now()
	a := Area{ID: s.ids.Next(), Code: code, Name: name, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateArea(ctx, &a); err != nil {
		if errors.Is(err, ErrAreaExists) {
			return Area{}, fmt.Errorf("%w: code %q", ErrAreaExists, code)
		}
		return Area{}, err
	}
	return a, nil
}

// Areas lists areas.
func (s *Service) Areas(ctx context.Context, p paging.Page) ([]Area, int, error) {
	return s.store.Areas(ctx, p)
}

// Area returns one area.
func (s *Service) Area(ctx context.Context, id ids.ID) (Area, error) { return s.dir.Area(ctx, id) }

// DefaultArea returns the area with DefaultAreaCode.
func (s *Service) DefaultArea(ctx context.Context) (Area, error) { return s.dir.DefaultArea(ctx) }

// DeleteArea removes an area no server or token uses.
func (s *Service) DeleteArea(ctx context.Context, id ids.ID) error {
	return s.store.DeleteArea(ctx, id)
}

// NewServer is what an operator gives to register a server.
type NewServer struct {
	Room       string // area id, code or name; empty: the default area
	ManagerIP  string
	DataIP     string
	SSHPort    int
	Account    string
	ProgramDir string
	DataDir    string
	CPUInfo    string
	CPUType    int
	// SSH, when not zero, asks for the agent to be installed over SSH.
	SSH SSHCredentials
	// KeepCredentials keeps SSH (sealed) after a successful bootstrap;
	// otherwise they are forgotten once the agent is online.
	KeepCredentials bool
	// RequestedBy names the user asking, for the join token's record.
	RequestedBy string
}

// Limits on SSH credentials.
const (
	maxPasswordBytes   = 1024
	maxPrivateKeyBytes = 16 << 10
)

// RegisterServer records a server. Without SSH credentials the server waits
// for its agent to enroll with a join token (installed by hand). With them,
// the agent is installed over SSH before RegisterServer returns: the server
// is stored as pending first (the bootstrap's join token is bound to it)
// and removed again if the bootstrap fails, so a failed call leaves nothing.
// Empty programDir and dataDir take DefaultProgramDir and DefaultDataDir
// when bootstrapping. StartRegisterServer does the same as a job.
func (s *Service) RegisterServer(ctx context.Context, n NewServer) (Server, error) {
	srv, sealed, err := s.storeServer(ctx, &n)
	if err != nil || n.SSH.IsZero() {
		return srv, err
	}
	return s.bootstrapServer(ctx, srv, n, sealed, NoProgress{})
}

// storeServer validates n, fills its defaults and stores the server as
// pending, with its credentials sealed when they are to be kept (the
// caller stores them once the bootstrap succeeded).
func (s *Service) storeServer(ctx context.Context, n *NewServer) (Server, SealedSecrets, error) {
	boot := !n.SSH.IsZero()
	if boot {
		if err := s.checkBootstrap(n); err != nil {
			return Server{}, SealedSecrets{}, err
		}
	} else if n.SSH.Passphrase != "" {
		return Server{}, SealedSecrets{}, invalid.Field("passphrase", "is only used with privateKey")
	}
	srv, err := s.newServer(ctx, *n)
	if err != nil {
		return Server{}, SealedSecrets{}, err
	}
	var sealed SealedSecrets
	if boot && n.KeepCredentials {
		// Sealed before anything happens on the host: a sealing failure
		// must not follow a successful install.
		if sealed, err = s.seal(srv.ID, n.SSH); err != nil {
			return Server{}, SealedSecrets{}, err
		}
	}
	if err := s.store.CreateServer(ctx, &srv); err != nil {
		if errors.Is(err, ErrServerExists) {
			return Server{}, SealedSecrets{}, fmt.Errorf("%w: managerIp %s is registered already", err, srv.ManagerIP)
		}
		return Server{}, SealedSecrets{}, err
	}
	return srv, sealed, nil
}

// newServer validates n and returns the pending server it describes.
func (s *Service) newServer(ctx context.Context, n NewServer) (Server, error) {
	ip, err := parseIP("managerIp", n.ManagerIP, true)
	if err != nil {
		return Server{}, err
	}
	dataIP, err := parseIP("dataIp", n.DataIP, false)
	if err != nil {
		return Server{}, err
	}
	if dataIP == "" {
		dataIP = ip
	}
	if n.SSHPort == 0 {
		n.SSHPort = 22
	}
	if n.SSHPort < 1 || n.SSHPort > 65535 {
		return Server{}, invalid.Field("sshPort", "%d is not a TCP port", n.SSHPort)
	}
	if err := invalid.Text("account", n.Account, 0, 64); err != nil {
		return Server{}, err
	}
	if err := invalid.Text("cpuInfo", n.CPUInfo, 0, 256); err != nil {
		return Server{}, err
	}
	if n.CPUType < 0 || n.CPUType > 1000 {
		return Server{}, invalid.Field("cpuType", "must be between 0 and 1000")
	}
	prog, err := checkDir("programDir", n.ProgramDir)
	if err != nil {
		return Server{}, err
	}
	data, err := checkDir("dataDir", n.DataDir)
	if err != nil {
		return Server{}, err
	}
	if prog != "" && data != "" && (within(prog, data) || within(data, prog)) {
		return Server{}, fmt.Errorf("%w: %s and %s", ErrDirsNested, prog, data)
	}
	area, err := s.resolveArea(ctx, n.Room)
	if err != nil {
		return Server{}, err
	}
	now := s.now()
	return Server{
		ID: s.ids.Next(), AreaID: area.ID, AreaName: area.Name,
		ManagerIP: ip, DataIP: dataIP, SSHPort: n.SSHPort, Account: n.Account,
		ProgramDir: prog, DataDir: data, CPUInfo: n.CPUInfo, CPUType: n.CPUType,
		AgentStatus: StatusPending, CreatedAt: now, UpdatedAt: now,
	}, nil
}

// checkBootstrap validates a bootstrap request and fills its defaults.
func (s *Service) checkBootstrap(n *NewServer) error {
	if s.bootstrap == nil {
		return invalid.Field("password", "SSH bootstrap is not configured on this manager: leave password and privateKey empty, create a join token and install the agent by hand")
	}
	switch {
	case strings.TrimSpace(n.Account) == "":
		return invalid.Field("account", "is required to log in over SSH")
	case len(n.SSH.Password) > maxPasswordBytes:
		return invalid.Field("password", "at most %d bytes", maxPasswordBytes)
	case len(n.SSH.PrivateKey) > maxPrivateKeyBytes:
		return invalid.Field("privateKey", "at most %d bytes", maxPrivateKeyBytes)
	case len(n.SSH.Passphrase) > maxPasswordBytes:
		return invalid.Field("passphrase", "at most %d bytes", maxPasswordBytes)
	case n.SSH.Passphrase != "" && n.SSH.PrivateKey == "":
		return invalid.Field("passphrase", "is only used with privateKey")
	case n.KeepCredentials && s.sealer == nil:
		return invalid.Field("keepPassword", "this manager has no key to seal credentials with")
	}
	if err := s.bootstrap.CheckCredentials(n.SSH); err != nil {
		return err
	}
	if n.ProgramDir == "" {
		n.ProgramDir = DefaultProgramDir
	}
	if n.DataDir == "" {
		n.DataDir = DefaultDataDir
	}
	return nil
}

// secretContext binds a sealed credential to its server and field.
func secretContext(id ids.ID, field string) string {
	return "server/" + id.String() + "/ssh-" + field
}

func (s *Service) seal(id ids.ID, c SSHCredentials) (SealedSecrets, error) {
	var out SealedSecrets
	for _, f := range []struct {
		name  string
		plain string
		dst   *[]byte
	}{
		{"password", c.Password, &out.Password},
		{"private-key", c.PrivateKey, &out.PrivateKey},
		{"passphrase", c.Passphrase, &out.Passphrase},
	} {
		v, err := s.sealer.Seal([]byte(f.plain), secretContext(id, f.name))
		if err != nil {
			return SealedSecrets{}, fmt.Errorf("seal ssh %s: %w", f.name, err)
		}
		*f.dst = v
	}
	return out, nil
}

// ServerCredentials returns the SSH credentials kept for a server (zero if
// none are kept).
func (s *Service) ServerCredentials(ctx context.Context, id ids.ID) (SSHCredentials, error) {
	sealed, err := s.store.ServerSecrets(ctx, id)
	if err != nil {
		return SSHCredentials{}, err
	}
	if s.sealer == nil {
		if sealed.Password != nil || sealed.PrivateKey != nil {
			return SSHCredentials{}, errors.New("server credentials are sealed but this manager has no sealing key")
		}
		return SSHCredentials{}, nil
	}
	var out SSHCredentials
	for _, f := range []struct {
		name   string
		sealed []byte
		dst    *string
	}{
		{"password", sealed.Password, &out.Password},
		{"private-key", sealed.PrivateKey, &out.PrivateKey},
		{"passphrase", sealed.Passphrase, &out.Passphrase},
	} {
		v, err := s.sealer.Open(f.sealed, secretContext(id, f.name))
		if err != nil {
			return SSHCredentials{}, fmt.Errorf("open ssh %s of server %s: %w", f.name, id, err)
		}
		*f.dst = string(v)
	}
	return out, nil
}

// ForgetHostKey drops the recorded SSH host key of ip:port (port 0: 22).
func (s *Service) ForgetHostKey(ctx context.Context, ip string, port int) error {
	addr, err := parseIP("managerIp", ip, true)
	if err != nil {
		return err
	}
	if port == 0 {
		port = 22
	}
	if port < 1 || port > 65535 {
		return invalid.Field("sshPort", "%d is not a TCP port", port)
	}
	if s.bootstrap == nil {
		return invalid.Field("managerIp", "SSH bootstrap is not configured on this manager")
	}
	return s.bootstrap.ForgetHostKey(ctx, addr, port)
}

func (s *Service) resolveArea(ctx context.Context, room string) (Area, error) {
	room = strings.TrimSpace(room)
	if room == "" {
		a, err := s.DefaultArea(ctx)
		if errors.Is(err, ErrAreaNotFound) {
			return Area{}, nil
		}
		return a, err
	}
	if id, err := ids.Parse(room); err == nil {
		if a, err := s.store.Area(ctx, id); err == nil {
			return a, nil
		}
	}
	if a, err := s.store.AreaByCode(ctx, room); err == nil {
		return a, nil
	}
	a, err := s.store.AreaByName(ctx, room)
	if errors.Is(err, ErrAreaNotFound) {
		return Area{}, fmt.Errorf("%w: no area with id, code or name %q", ErrAreaNotFound, room)
	}
	return a, err
}

// Servers lists servers with the agent status this manager sees now.
func (s *Service) Servers(ctx context.Context, f ServerFilter, p paging.Page) ([]Server, int, error) {
	if f.Status != "" {
		f.Live = s.presence.Live()
	}
	list, total, err := s.store.Servers(ctx, f, p)
	if err != nil {
		return nil, 0, err
	}
	for i := range list {
		s.overlay(&list[i])
	}
	return list, total, nil
}

// ServerStamps lists one page of servers as stamps, with the agent
// status and last seen time this manager sees now: what changes without an
// edit of a server's record. A list that kept a server's record at the
// stamp's Version may show it again; else ServersByID reads it.
func (s *Service) ServerStamps(ctx context.Context, f ServerFilter, p paging.Page) ([]ServerStamp, int, error) {
	if f.Status != "" {
		f.Live = s.presence.Live()
	}
	list, total, err := s.store.ServerStamps(ctx, f, p)
	if err != nil {
		return nil, 0, err
	}
	for i := range list {
		st := &list[i]
		st.AgentStatus, st.LastSeen = s.liveStatus(st.ID, st.Enrolled, st.LastSeen)
	}
	return list, total, nil
}

// ServersByID returns the records of the servers with these ids that
// exist, in no particular order; their agent status and last seen time
// are the stored ones, which lag (ServerStamps has the live ones).
func (s *Service) ServersByID(ctx context.Context, ids []ids.ID) ([]Server, error) {
	return s.store.ServersByID(ctx, ids)
}

// Server returns one server with its live agent status.
func (s *Service) Server(ctx context.Context, id ids.ID) (Server, error) {
	srv, err := s.store.Server(ctx, id)
	if err != nil {
		return Server{}, err
	}
	s.overlay(&srv)
	return srv, nil
}

// overlay replaces the stored status and last-seen time, written up to a
// flush interval ago, with the live ones.
func (s *Service) overlay(srv *Server) {
	srv.AgentStatus, srv.LastSeen = s.liveStatus(srv.ID, srv.CertSerial != "", srv.LastSeen)
}

// liveStatus is the agent status of a server and when it was last seen,
// given whether it is enrolled and when the store last saw it.
func (s *Service) liveStatus(id ids.ID, enrolled bool, stored time.Time) (AgentStatus, time.Time) {
	seen, online := s.presence.LastSeen(id)
	switch {
	case online:
		if seen.After(stored) {
			return StatusOnline, seen
		}
		return StatusOnline, stored
	case !enrolled:
		return StatusPending, stored
	default:
		return StatusOffline, stored
	}
}

// DeleteServer removes the server, revokes its agent's certificate and
// closes its session.
func (s *Service) DeleteServer(ctx context.Context, id ids.ID) error {
	if err := s.store.DeleteServer(ctx, id, s.now()); err != nil {
		return err
	}
	s.agents.Disconnect(id)
	s.presence.Forget(id)
	for _, f := range s.forgetters {
		f.Forget(id)
	}
	return nil
}

// PingServer measures a round trip to the server's agent through the tunnel.
func (s *Service) PingServer(ctx context.Context, id ids.ID) (time.Duration, string, error) {
	if _, err := s.store.Server(ctx, id); err != nil {
		return 0, "", err
	}
	if !s.agents.Online(id) {
		return 0, "", ErrAgentNotOnline
	}
	return s.agents.Ping(ctx, id)
}

// CheckAgentCert accepts an agent certificate only while its server exists
// and the serial is the one issued last.
func (s *Service) CheckAgentCert(ctx context.Context, id ids.ID, serial string) error {
	return s.dir.CheckAgentCert(ctx, id, serial)
}

func parseIP(field, v string, required bool) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		if required {
			return "", invalid.Field(field, "is required")
		}
		return "", nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
		return "", invalid.Field(field, "%q is not a usable IP address", v)
	}
	return a.Unmap().String(), nil
}

func checkDir(field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if len(v) > 1024 || !filepath.IsAbs(v) || strings.ContainsAny(v, "\x00\n\r") {
		return "", invalid.Field(field, "%q must be an absolute path", v)
	}
	clean := filepath.Clean(v)
	if clean == "/" {
		return "", invalid.Field(field, "must not be the root directory")
	}
	for _, part := range strings.Split(v, "/") {
		if part == ".." {
			return "", invalid.Field(field, "%q must not contain '..'", v)
		}
	}
	return clean, nil
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}
