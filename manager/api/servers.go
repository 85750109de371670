package api

import (
	"errors"

	"github.com/labstack/echo/v4"

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
}

func (a *API) createServer(c echo.Context) error {
	var r serverRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "managerIp=%q", truncate(r.ManagerIP, 64))
	if r.Password != "" {
		// Refuse rather than silently drop a credential we cannot yet keep safely.
		return invalid.Field("password", "SSH bootstrap is not available in this version: leave password empty, create a join token (POST %s/agent/token) and run admq-agent on the server", Prefix)
	}
	srv, err := a.d.Fleet.RegisterServer(c.Request().Context(), fleet.NewServer{
		Room: r.Room, ManagerIP: r.ManagerIP, DataIP: r.DataIP, SSHPort: r.SSHPort, Account: r.Account,
		ProgramDir: r.ProgramDir, DataDir: r.DataDir, CPUInfo: r.CPUInfo, CPUType: r.CPUType,
	})
	if err != nil {
		return err
	}
	return ok(c, toServerView(srv))
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
		return ok(c, newPage(p, 1, []serverView{toServerView(srv)}))
	}
	var f fleet.ServerFilter
	if f.AreaID, err = queryID(c, "areaId"); err != nil {
		return err
	}
	switch st := fleet.AgentStatus(c.QueryParam("agentStatus")); st {
	case "", fleet.StatusOnline, fleet.StatusOffline, fleet.StatusPending:
		f.Status = st
	default:
		return invalid.Field("agentStatus", "must be online, offline or pending")
	}
	list, total, err := a.d.Fleet.Servers(ctx, f, p)
	if err != nil {
		return err
	}
	views := make([]serverView, len(list))
	for i, s := range list {
		views[i] = toServerView(s)
	}
	return ok(c, newPage(p, total, views))
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
