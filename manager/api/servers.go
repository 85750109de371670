package api

import (
	"errors"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleet"
)

type serverRequest struct {
	Room       string `json:"room"`
	ManagerIP  string `json:"managerIp"`
	SSHPort    int    `json:"sshPort"`
	Account    string `json:"account"`
	Password   string `json:"password"`
	ProgramDir string `json:"programDir"`
	DataDir    string `json:"dataDir"`
	DataIP     string `json:"dataIp"`
	CPUInfo    string `json:"cpuInfo"`
	CPUType    int    `json:"cpuType"`
	// PrivateKey is a PEM private key to log in with instead of, or besides,
	// the password; Passphrase decrypts it if it is encrypted.
	PrivateKey string `json:"privateKey"`
	Passphrase string `json:"passphrase"`
	// KeepPassword keeps the SSH credentials, encrypted, after the agent is
	// installed; by default they are forgotten.
	KeepPassword bool `json:"keepPassword"`
	// Async, with a password or privateKey, answers at once with the
	// pending server and the job that installs its agent (jobId), to be
	// followed with /job/detail or /job/events.
	Async bool `json:"async"`
}

// serverJobView is a server added with async: the pending server and the
// job of its SSH bootstrap.
type serverJobView struct {
	serverView
	JobID ids.ID `json:"jobId"`
}

// createServer registers a server. With a password or private key the
// manager installs the agent over SSH and answers once it is online (or
// with the failure, having undone its work), or at once with the job
// doing it when async is set; without, the server waits for an agent
// installed by hand with a join token.
func (a *API) createServer(c echo.Context) error {
	var r serverRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	// Never the credentials: only whether there were any.
	detail(c, "managerIp=%q sshPort=%d account=%q sshBootstrap=%t keepPassword=%t async=%t",
		truncate(r.ManagerIP, 64), r.SSHPort, truncate(r.Account, 64), r.Password != "" || r.PrivateKey != "", r.KeepPassword, r.Async)
	if r.KeepPassword && r.Password == "" && r.PrivateKey == "" {
		return invalid.Field("keepPassword", "there is no password or privateKey to keep")
	}
	n := fleet.NewServer{
		Room: r.Room, ManagerIP: r.ManagerIP, DataIP: r.DataIP, SSHPort: r.SSHPort, Account: r.Account,
		ProgramDir: r.ProgramDir, DataDir: r.DataDir, CPUInfo: r.CPUInfo, CPUType: r.CPUType,
		SSH:             fleet.SSHCredentials{Password: r.Password, PrivateKey: r.PrivateKey, Passphrase: r.Passphrase},
		KeepCredentials: r.KeepPassword,
		RequestedBy:     userOf(c).Username,
	}
	if r.Async {
		srv, job, err := a.d.Fleet.StartRegisterServer(c.Request().Context(), n)
		if err != nil {
			return err
		}
		detail(c, "managerIp=%q sshPort=%d account=%q sshBootstrap=true keepPassword=%t async=true server=%s job=%s",
			srv.ManagerIP, srv.SSHPort, truncate(srv.Account, 64), r.KeepPassword, srv.ID, job)
		return ok(c, serverJobView{serverView: a.serverView(srv), JobID: job})
	}
	srv, err := a.d.Fleet.RegisterServer(c.Request().Context(), n)
	if err != nil {
		return err
	}
	return ok(c, a.serverView(srv))
}

func (a *API) listServers(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, err := queryID(c, "id")
	if err != nil {
		return err
	}
	if !id.IsZero() {
		srv, err := a.d.Fleet.Server(ctx, id)
		if errors.Is(err, fleet.ErrServerNotFound) {
			return ok(c, newPage(p, 0, []serverView{}))
		}
		if err != nil {
			return err
		}
		views := []serverView{a.serverView(srv)}
		if err := a.deployClusters(c, views); err != nil {
			return err
		}
		return ok(c, newPage(p, 1, views))
	}
	var f fleet.ServerFilter
	if f.AreaID, err = queryID(c, "areaId"); err != nil {
		return err
	}
	if f.HostnamePrefix = c.QueryParam("hostname"); len(f.HostnamePrefix) > 255 || strings.ContainsRune(f.HostnamePrefix, 0) {
		return invalid.Field("hostname", "a hostname prefix: at most 255 bytes, no NUL")
	}
	switch st := fleet.AgentStatus(c.QueryParam("agentStatus")); st {
	case "", fleet.StatusOnline, fleet.StatusOffline, fleet.StatusPending:
		f.Status = st
	default:
		return invalid.Field("agentStatus", "must be online, offline or pending")
	}
	return a.listServerPage(c, f, p)
}

// deployClusters fills each server's deployClusters: the names of the
// clusters with nodes on it, as the seed lists them ("a, b").
func (a *API) deployClusters(c echo.Context, views []serverView) error {
	if a.d.Clusters == nil || len(views) == 0 {
		return nil
	}
	serverIDs := make([]ids.ID, len(views))
	for i, v := range views {
		serverIDs[i] = v.ID
	}
	names, err := a.d.Clusters.ClusterNamesOnServers(c.Request().Context(), serverIDs)
	if err != nil {
		return err
	}
	for i := range views {
		views[i].DeployClusters = strings.Join(names[views[i].ID], ", ")
	}
	return nil
}

func (a *API) deleteServer(c echo.Context) error {
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "server=%s", id)
	if err := a.d.Fleet.DeleteServer(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}

func (a *API) pingServer(c echo.Context) error {
	id, err := queryID(c, "id")
	if err != nil {
		return err
	}
	if id.IsZero() {
		return invalid.Field("id", "is required")
	}
	rtt, version, err := a.d.Fleet.PingServer(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return ok(c, pingView{ID: id, RttMs: float64(rtt.Microseconds()) / 1000, AgentVersion: version})
}

type hostKeyRequest struct {
	ManagerIP string `json:"managerIp"`
	SSHPort   int    `json:"sshPort"`
}

// forgetHostKey drops the SSH host key recorded on first use for
// managerIp:sshPort, after a host was reinstalled and its key changed.
func (a *API) forgetHostKey(c echo.Context) error {
	r := hostKeyRequest{ManagerIP: c.QueryParam("managerIp")}
	if p := c.QueryParam("sshPort"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return invalid.Field("sshPort", "must be a whole number")
		}
		r.SSHPort = n
	}
	if c.Request().ContentLength != 0 {
		var b hostKeyRequest
		if err := decode(c, &b); err != nil {
			return err
		}
		if b.ManagerIP != "" {
			r.ManagerIP = b.ManagerIP
		}
		if b.SSHPort != 0 {
			r.SSHPort = b.SSHPort
		}
	}
	detail(c, "managerIp=%q sshPort=%d", truncate(r.ManagerIP, 64), r.SSHPort)
	if err := a.d.Fleet.ForgetHostKey(c.Request().Context(), r.ManagerIP, r.SSHPort); err != nil {
		return err
	}
	return ok(c, nil)
}
