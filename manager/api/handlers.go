package api

import (
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (a *API) login(c echo.Context) error {
	var r loginRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "username=%q", truncate(r.Username, 64))
	if r.Username == "" || r.Password == "" {
		return invalid.Field("username", "username and password are required")
	}
	token, exp, u, err := a.d.Auth.Login(c.Request().Context(), r.Username, r.Password)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			return newError(codeAuthorizeFailed, "wrong username or password")
		}
		return err
	}
	c.Set(ctxUser, u)
	return ok(c, loginView{Token: token, TokenType: "Bearer", ExpireTime: apiTime(exp), Username: u.Username, Role: string(u.Role)})
}

func (a *API) health(c echo.Context) error {
	n := 0
	if a.d.AgentsConnected != nil {
		n = a.d.AgentsConnected()
	}
	return ok(c, healthView{Status: "ok", AgentsConnected: n})
}

func (a *API) userInfo(c echo.Context) error { return ok(c, toUserView(userOf(c))) }

type passwordRequest struct {
	OldPassword string `json:"oldPassword"`
	NewPassword string `json:"newPassword"`
}

func (a *API) changePassword(c echo.Context) error {
	var r passwordRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	u := userOf(c)
	detail(c, "user=%s", u.Username)
	if err := a.d.Auth.ChangePassword(c.Request().Context(), u.ID, r.OldPassword, r.NewPassword); err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			return newError(codeAuthorizeFailed, "the old password is wrong")
		}
		return err
	}
	return ok(c, nil)
}

type userRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (a *API) createUser(c echo.Context) error {
	var r userRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "username=%q role=%q", truncate(r.Username, 64), truncate(r.Role, 16))
	u, err := a.d.Auth.CreateUser(c.Request().Context(), r.Username, r.Password, auth.Role(r.Role))
	if err != nil {
		return err
	}
	return ok(c, toUserView(u))
}

func (a *API) listUsers(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Auth.Users(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]userView, len(list))
	for i, u := range list {
		views[i] = toUserView(u)
	}
	return ok(c, newPage(p, total, views))
}

func (a *API) deleteUser(c echo.Context) error {
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "user=%s", id)
	if id == userOf(c).ID {
		return invalid.Field("id", "you cannot delete yourself")
	}
	if err := a.d.Auth.DeleteUser(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}

type areaRequest struct {
	Code string `json:"code"`
	Area string `json:"area"`
}

func (a *API) createArea(c echo.Context) error {
	var r areaRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "code=%q", truncate(r.Code, 64))
	area, err := a.d.Fleet.CreateArea(c.Request().Context(), r.Code, r.Area)
	if err != nil {
		return err
	}
	return ok(c, toAreaView(area))
}

func (a *API) listAreas(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Fleet.Areas(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]areaView, len(list))
	for i, ar := range list {
		views[i] = toAreaView(ar)
	}
	return ok(c, newPage(p, total, views))
}

func (a *API) deleteArea(c echo.Context) error {
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "area=%s", id)
	if err := a.d.Fleet.DeleteArea(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}

// serverRequest has the seed's fields for adding a server.
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

type tokenRequest struct {
	Description string `json:"description"`
	AreaID      ids.ID `json:"areaId"`
	// MaxUses: 1 (the default) makes a single-use token; 0 is unlimited.
	MaxUses *int `json:"maxUses"`
	// TTLSeconds: default 86400; 0 never expires.
	TTLSeconds *int64 `json:"ttlSeconds"`
}

func (a *API) createToken(c echo.Context) error {
	var r tokenRequest
	if c.Request().ContentLength != 0 {
		if err := decode(c, &r); err != nil {
			return err
		}
	}
	spec := enroll.TokenSpec{Description: r.Description, AreaID: r.AreaID, MaxUses: 1, CreatedBy: userOf(c).Username}
	if r.MaxUses != nil {
		spec.MaxUses = *r.MaxUses
	}
	if r.TTLSeconds != nil {
		switch ttl := *r.TTLSeconds; {
		case ttl < 0 || ttl > int64(enroll.MaxTokenTTL/time.Second):
			return invalid.Field("ttlSeconds", "must be 0 (never expires) to %d", int64(enroll.MaxTokenTTL/time.Second))
		case ttl == 0:
			spec.TTL = -1
		default:
			spec.TTL = time.Duration(ttl) * time.Second
		}
	}
	t, err := a.d.Enroll.CreateToken(c.Request().Context(), spec)
	if err != nil {
		return err
	}
	detail(c, "token=%s maxUses=%d", t.ID, t.MaxUses)
	host := c.Request().Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		host = "MANAGER-HOST"
	}
	manager := net.JoinHostPort(host, strconv.Itoa(a.d.TunnelPort))
	return ok(c, createdTokenView{
		tokenView:   toTokenView(t.JoinToken, a.d.Now()),
		Token:       t.JoinString,
		CACertHash:  t.CAPin,
		JoinCommand: "admq-agent run --manager " + manager + " --token " + t.JoinString,
	})
}

func (a *API) listTokens(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Enroll.Tokens(c.Request().Context(), p)
	if err != nil {
		return err
	}
	now := a.d.Now()
	views := make([]tokenView, len(list))
	for i, t := range list {
		views[i] = toTokenView(t, now)
	}
	return ok(c, newPage(p, total, views))
}

type tokenIDRequest struct {
	ID string `json:"id"`
}

func (a *API) revokeToken(c echo.Context) error {
	id := c.QueryParam("id")
	if c.Request().ContentLength != 0 {
		var r tokenIDRequest
		if err := decode(c, &r); err != nil {
			return err
		}
		if id != "" && r.ID != "" && id != r.ID {
			return invalid.Field("id", "the body says %q and the query says %q", r.ID, id)
		}
		if id == "" {
			id = r.ID
		}
	}
	if id == "" {
		return invalid.Field("id", "is required (in the JSON body or as ?id=)")
	}
	detail(c, "token=%s", truncate(id, 16))
	if err := a.d.Enroll.Revoke(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}

func (a *API) listAudit(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Audit.Audit(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]auditView, len(list))
	for i, e := range list {
		views[i] = toAuditView(e)
	}
	return ok(c, newPage(p, total, views))
}
