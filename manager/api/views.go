package api

import (
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/audit"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

type areaView struct {
	ID         ids.ID  `json:"id"`
	CreateTime apiTime `json:"createTime"`
	UpdateTime apiTime `json:"updateTime"`
	Code       string  `json:"code"`
	Area       string  `json:"area"`
}

func toAreaView(a fleet.Area) areaView {
	return areaView{ID: a.ID, CreateTime: apiTime(a.CreatedAt), UpdateTime: apiTime(a.UpdatedAt), Code: a.Code, Area: a.Name}
}

// serverView has the seed's server fields plus what the agent reports.
type serverView struct {
	ID                   ids.ID      `json:"id"`
	CreateTime           apiTime     `json:"createTime"`
	UpdateTime           apiTime     `json:"updateTime"`
	AreaID               ids.ID      `json:"areaId"`
	Room                 string      `json:"room"`
	ManagerIP            string      `json:"managerIp"`
	DataIP               string      `json:"dataIp"`
	SSHPort              int         `json:"sshPort"`
	Account              string      `json:"account"`
	Password             string      `json:"password"`   // "******" when kept, else ""
	PrivateKey           string      `json:"privateKey"` // "******" when kept, else ""
	ProgramDir           string      `json:"programDir"`
	DataDir              string      `json:"dataDir"`
	CPUInfo              string      `json:"cpuInfo"`
	CPUType              int         `json:"cpuType"`
	ServerExporterStatus int         `json:"serverExporterStatus"` // 1 while the agent reports host metrics (seed: 采集器部署状态), else 0
	DeployClusters       string      `json:"deployClusters"`       // names of the clusters with nodes on the server, joined by ", "; "" when none
	AgentStatus          string      `json:"agentStatus"`
	LastSeen             apiTime     `json:"lastSeen"`
	AgentVersion         string      `json:"agentVersion"`
	Hostname             string      `json:"hostname"`
	OS                   string      `json:"os"`
	Arch                 string      `json:"arch"`
	CPUs                 int         `json:"cpus"`
	MemoryTotal          uint64      `json:"memoryTotal"`
	MemoryAvailable      uint64      `json:"memoryAvailable"`
	DiskTotal            uint64      `json:"diskTotal"`
	DiskFree             uint64      `json:"diskFree"`
	Facts                fleet.Facts `json:"facts"`
}

// serverView is toServerView with the live state of the server's metrics
// collector: serverExporterStatus 1 while its agent reports, else 0.
func (a *API) serverView(s fleet.Server) serverView {
	v := toServerView(s)
	if a.d.Exporters.Reporting(s.ID) {
		v.ServerExporterStatus = 1
	}
	return v
}

func toServerView(s fleet.Server) serverView {
	return serverView{
		ID: s.ID, CreateTime: apiTime(s.CreatedAt), UpdateTime: apiTime(s.UpdatedAt),
		AreaID: s.AreaID, Room: s.AreaName, ManagerIP: s.ManagerIP, DataIP: s.DataIP,
		SSHPort: s.SSHPort, Account: s.Account,
		Password: mask(s.HasPassword), PrivateKey: mask(s.HasPrivateKey), // never returned
		ProgramDir: s.ProgramDir, DataDir: s.DataDir, CPUInfo: s.CPUInfo, CPUType: s.CPUType,
		AgentStatus: string(s.AgentStatus), LastSeen: apiTime(s.LastSeen), AgentVersion: s.AgentVersion,
		Hostname: s.Facts.Hostname, OS: s.Facts.OS, Arch: s.Facts.Arch, CPUs: s.Facts.CPUs,
		MemoryTotal: s.Facts.MemoryTotal, MemoryAvailable: s.Facts.MemoryAvailable,
		DiskTotal: s.Facts.DiskTotal, DiskFree: s.Facts.DiskFree, Facts: s.Facts,
	}
}

// mask stands for a kept secret.
func mask(kept bool) string {
	if kept {
		return "******"
	}
	return ""
}

type tokenView struct {
	ID          string  `json:"id"`
	Description string  `json:"description"`
	AreaID      ids.ID  `json:"areaId"`
	ServerID    ids.ID  `json:"serverId"`
	MaxUses     int     `json:"maxUses"`
	Uses        int     `json:"uses"`
	Status      string  `json:"status"`
	ExpireTime  apiTime `json:"expireTime"`
	RevokeTime  apiTime `json:"revokeTime"`
	CreatedBy   string  `json:"createdBy"`
	CreateTime  apiTime `json:"createTime"`
}

func toTokenView(t enroll.JoinToken, now time.Time) tokenView {
	st := "active"
	switch {
	case !t.RevokedAt.IsZero():
		st = "revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		st = "expired"
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		st = "used"
	}
	return tokenView{
		ID: t.ID, Description: t.Description, AreaID: t.AreaID, ServerID: t.ServerID,
		MaxUses: t.MaxUses, Uses: t.Uses, Status: st, ExpireTime: apiTime(t.ExpiresAt),
		RevokeTime: apiTime(t.RevokedAt), CreatedBy: t.CreatedBy, CreateTime: apiTime(t.CreatedAt),
	}
}

// createdTokenView is shown once: it carries the secret.
type createdTokenView struct {
	tokenView
	// Token is the whole join token "<id>.<secret>::sha256:<hex>".
	Token       string `json:"token"`
	CACertHash  string `json:"caCertHash"`
	JoinCommand string `json:"joinCommand"`
}

type userView struct {
	ID         ids.ID  `json:"id"`
	Username   string  `json:"username"`
	Role       string  `json:"role"`
	CreateTime apiTime `json:"createTime"`
	UpdateTime apiTime `json:"updateTime"`
}

func toUserView(u auth.User) userView {
	return userView{ID: u.ID, Username: u.Username, Role: string(u.Role), CreateTime: apiTime(u.CreatedAt), UpdateTime: apiTime(u.UpdatedAt)}
}

type loginView struct {
	Token      string  `json:"token"`
	TokenType  string  `json:"tokenType"`
	ExpireTime apiTime `json:"expireTime"`
	Username   string  `json:"username"`
	Role       string  `json:"role"`
}

type auditView struct {
	ID       ids.ID  `json:"id"`
	Time     apiTime `json:"time"`
	Username string  `json:"username"`
	Role     string  `json:"role"`
	Consumer string  `json:"consumer"` // the third-party app of an Open API call, else ""
	Method   string  `json:"method"`
	Path     string  `json:"path"`
	RemoteIP string  `json:"remoteIp"`
	Status   int     `json:"status"`
	Code     int     `json:"code"`
	Detail   string  `json:"detail"`
}

func toAuditView(e audit.Entry) auditView {
	return auditView{ID: e.ID, Time: apiTime(e.At), Username: e.Username, Role: e.Role, Consumer: e.Consumer, Method: e.Method,
		Path: e.Path, RemoteIP: e.RemoteIP, Status: e.Status, Code: e.Code, Detail: e.Detail}
}

type pingView struct {
	ID           ids.ID  `json:"id"`
	RttMs        float64 `json:"rttMs"`
	AgentVersion string  `json:"agentVersion"`
}

type healthView struct {
	Status          string `json:"status"`
	AgentsConnected int    `json:"agentsConnected"`
	// TimeZone and UTCOffsetSeconds are the manager's zone now: the API's
	// times (yyyy-MM-dd HH:mm:ss) are in it.
	TimeZone         string `json:"timeZone"`
	UTCOffsetSeconds int    `json:"utcOffsetSeconds"`
}
