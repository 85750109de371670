// Package fleet owns availability areas and servers: the records an operator
// manages and the live presence of each server's agent.
package fleet

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
)

// Errors callers branch on; transports map them to their own codes.
var (
	ErrAreaExists     = errors.New("area already exists")
	ErrAreaNotFound   = errors.New("area does not exist")
	ErrAreaInUse      = errors.New("area is still used by servers or join tokens")
	ErrServerExists   = errors.New("server already exists")
	ErrServerNotFound = errors.New("server does not exist")
	ErrServerInUse    = errors.New("server still runs cluster nodes; delete those clusters or nodes first")
	ErrDirsNested     = errors.New("program dir and data dir must not contain each other")
	ErrAgentNotOnline = errors.New("server's agent is not connected")
)

// Area is an availability area ("room" in the console) that groups servers.
type Area struct {
	ID        ids.ID
	Code      string
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AgentStatus is what the manager knows of a server's agent.
type AgentStatus string

// Agent states. Pending: the record exists but no agent has enrolled yet.
const (
	StatusPending AgentStatus = "pending"
	StatusOnline  AgentStatus = "online"
	StatusOffline AgentStatus = "offline"
)

// Facts are what an agent reports about its host in every heartbeat.
type Facts struct {
	Hostname        string `json:"hostname"`
	OS              string `json:"os"`
	Platform        string `json:"platform"`
	PlatformVersion string `json:"platformVersion"`
	KernelVersion   string `json:"kernelVersion"`
	Arch            string `json:"arch"`
	CPUs            int    `json:"cpus"`
	MemoryTotal     uint64 `json:"memoryTotal"`
	MemoryAvailable uint64 `json:"memoryAvailable"`
	DiskPath        string `json:"diskPath"`
	DiskTotal       uint64 `json:"diskTotal"`
	DiskFree        uint64 `json:"diskFree"`
	AgentVersion    string `json:"agentVersion"`
	BootTime        int64  `json:"bootTime"`
	// StateDir is the agent's state dir; no node dir may overlap it.
	StateDir string `json:"stateDir,omitempty"`
}

// Server is one managed host. ID is also its agent's identity: the CN of the
// client certificate the agent received at enrollment.
type Server struct {
	ID           ids.ID
	AreaID       ids.ID // zero: no area
	AreaName     string // filled by reads, ignored by writes
	ManagerIP    string
	DataIP       string
	SSHPort      int
	Account      string
	ProgramDir   string
	DataDir      string
	CPUInfo      string
	CPUType      int
	AgentStatus  AgentStatus
	AgentVersion string
	LastSeen     time.Time // zero: never seen
	Facts        Facts
	CertSerial   string // hex serial of the agent's current certificate; empty until enrolled
	// HasPassword and HasPrivateKey say whether SSH credentials are kept
	// (sealed) for the server; filled by reads, ignored by writes.
	HasPassword   bool
	HasPrivateKey bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Version, filled by reads, changes with every change of the record
	// except its agent status and last seen time; lists of servers keep
	// what they encoded of a server until it does.
	Version int64
}

// ServerStamp is one entry of a page of servers: the server's id, the
// version of its record (Server.Version), and what changes without an
// edit of the record: its agent status (live), when it was last seen and
// the clusters with nodes on it.
type ServerStamp struct {
	ID          ids.ID
	Version     int64
	AgentStatus AgentStatus
	LastSeen    time.Time // zero: never seen
	// Enrolled says whether the server has an agent certificate (a server
	// that is not online is then offline, else pending).
	Enrolled bool
	// DeployClusters are the names of the clusters with nodes on the
	// server, sorted and joined by ", "; empty when none.
	DeployClusters string
}

// Defaults for where SSH bootstrap installs the agent when a server's
// programDir or dataDir is not given.
const (
	DefaultProgramDir = "/opt/admq"
	DefaultDataDir    = "/var/lib/admq"
)

// SSHCredentials log in to a server for its bootstrap: a password, a PEM
// private key (optionally encrypted with Passphrase), or both. They are
// never logged: String and LogValue print a mask.
type SSHCredentials struct {
	Password   string
	PrivateKey string
	Passphrase string
}

// IsZero reports whether no credential is given.
func (c SSHCredentials) IsZero() bool { return c.Password == "" && c.PrivateKey == "" }

// String masks the credentials.
func (c SSHCredentials) String() string { return "SSHCredentials{******}" }

// GoString masks the credentials in %#v.
func (c SSHCredentials) GoString() string { return c.String() }

// LogValue masks the credentials in slog.
func (c SSHCredentials) LogValue() slog.Value { return slog.StringValue("******") }

// SealedSecrets are a server's SSH credentials as kept in the store:
// each sealed (encrypted and authenticated) by a Sealer; nil means none.
type SealedSecrets struct {
	Password   []byte
	PrivateKey []byte
	Passphrase []byte
}

// Sealer encrypts secrets at rest; context binds a sealed value to the
// place it is stored.
type Sealer interface {
	Seal(plaintext []byte, context string) ([]byte, error)
	Open(sealed []byte, context string) ([]byte, error)
}

// Presence is one batched update of an agent's liveness and facts.
type Presence struct {
	ServerID ids.ID
	Status   AgentStatus
	LastSeen time.Time
	Facts    *Facts // nil: leave the stored facts alone
}

// ServerFilter narrows a server list. Zero fields do not filter.
type ServerFilter struct {
	AreaID ids.ID
	// HostnamePrefix selects servers whose agent-reported hostname starts
	// with it (case-sensitive); empty: all.
	HostnamePrefix string
	// Status selects by agent status as decided by Live: online means in
	// Live, offline means enrolled and not in Live, pending means never
	// enrolled.
	Status AgentStatus
	// Live are the servers whose agents have a session now.
	Live []ids.ID
}

// Store is what fleet needs from persistence.
type Store interface {
	DirectoryStore // a Service answers what its Directory does

	CreateArea(ctx context.Context, a *Area) error
	Areas(ctx context.Context, p paging.Page) ([]Area, int, error)
	Area(ctx context.Context, id ids.ID) (Area, error)
	// AreaByCode and AreaByName return ErrAreaNotFound when there is none;
	// names are not unique, so AreaByName returns the oldest match.
	AreaByCode(ctx context.Context, code string) (Area, error)
	AreaByName(ctx context.Context, name string) (Area, error)
	DeleteArea(ctx context.Context, id ids.ID) error

	CreateServer(ctx context.Context, s *Server) error
	Server(ctx context.Context, id ids.ID) (Server, error)
	Servers(ctx context.Context, f ServerFilter, p paging.Page) ([]Server, int, error)
	// ServerStamps is Servers as stamps: one page of the servers that
	// match f, newest first, and how many match in all.
	ServerStamps(ctx context.Context, f ServerFilter, p paging.Page) ([]ServerStamp, int, error)
	// ServersByID returns the servers with these ids that exist, in no
	// particular order.
	ServersByID(ctx context.Context, ids []ids.ID) ([]Server, error)
	// DeleteServer removes the server and records its certificate serial as
	// revoked, in one transaction.
	DeleteServer(ctx context.Context, id ids.ID, now time.Time) error
	// SavePresence applies a batch of presence updates in one transaction;
	// updates for servers that no longer exist are skipped.
	SavePresence(ctx context.Context, batch []Presence) error
	// MarkAllOffline sets every online server offline; used at manager start,
	// before any session exists.
	MarkAllOffline(ctx context.Context, now time.Time) error

	// SetServerSecrets replaces the server's kept SSH credentials (all nil:
	// none are kept), or returns ErrServerNotFound.
	SetServerSecrets(ctx context.Context, id ids.ID, s SealedSecrets) error
	// ServerSecrets returns the server's kept SSH credentials, or
	// ErrServerNotFound.
	ServerSecrets(ctx context.Context, id ids.ID) (SealedSecrets, error)
}
