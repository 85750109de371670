package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/apollo"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/console"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	"github.com/admq/admq-manager/manager/pki"
	"github.com/admq/admq-manager/manager/store"
	"github.com/admq/admq-manager/manager/store/storetest"
)

const adminPassword = "admin-pass-123"

// fakeAgents stands in for the tunnel hub: no agent is connected.
type fakeAgents struct{}

func (fakeAgents) Online(ids.ID) bool { return false }
func (fakeAgents) Disconnect(ids.ID)  {}
func (fakeAgents) Ping(context.Context, ids.ID) (time.Duration, string, error) {
	return 0, "", fleet.ErrAgentNotOnline
}

type harness struct {
	t      testing.TB
	srv    *httptest.Server
	db     *store.DB
	secret []byte
	deps   func(testing.TB) Deps
	// metrics keeps the servers' host metrics; tests report to it directly.
	metrics *fleetmetrics.Store
	// presence is the fleet's live set; tests connect agents to it directly.
	presence *fleet.PresenceTracker
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	db := storetest.Open(t)
	ca, err := pki.Open(filepath.Join(dir, "pki"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := ids.NewGenerator(1)
	secret := bytes.Repeat([]byte("s"), 32)
	authSvc, err := auth.NewService(db, secret, time.Hour, bcrypt.MinCost, gen, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authSvc.EnsureAdmin(ctx, adminPassword); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	presence := fleet.NewPresenceTracker(db, time.Now, time.Second, log)
	fleetSvc := fleet.NewService(db, presence, fakeAgents{}, gen, time.Now)
	if err := fleetSvc.EnsureDefaultArea(ctx); err != nil {
		t.Fatal(err)
	}
	enrollSvc := enroll.NewService(db, fleetSvc, ca, gen, time.Now, time.Hour, log)
	fleetReg := prometheus.NewRegistry()
	metrics := fleetmetrics.New(fleetmetrics.Config{}, fleetSvc, fleetReg)
	fleetSvc.ForgetOnDelete(metrics)
	web, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, secret: secret, metrics: metrics, presence: presence}
	h.deps = func(t testing.TB) Deps {
		reg := prometheus.NewRegistry()
		return Deps{
			Auth: authSvc, Fleet: fleetSvc, Enroll: enrollSvc, Audit: db, IDs: gen, Now: time.Now,
			Log: log, Registerer: reg, Gatherer: reg, BodyLimit: 4096, TunnelPort: 12306,
			Exporters: metrics, FleetScrape: metrics.Handler(4), FleetMetrics: metrics, Console: web,
			Consumers: consumer.NewService(db, apollo.NewCatalog(db, db), gen, time.Now),
		}
	}
	h.srv = httptest.NewServer(New(h.deps(t)))
	t.Cleanup(h.srv.Close)
	return h
}

type reply struct {
	Status  int
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// call sends body (a string is sent as is, anything else as JSON).
func (h *harness) call(method, path, token string, body any) reply {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+Prefix+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r reply
	if err := json.Unmarshal(raw, &r); err != nil {
		h.t.Fatalf("%s %s: not an envelope: %s", method, path, raw)
	}
	r.Status = resp.StatusCode
	return r
}

func (h *harness) login(user, pass string) string {
	h.t.Helper()
	r := h.call("POST", "/login", "", map[string]string{"username": user, "password": pass})
	if r.Code != 0 {
		h.t.Fatalf("login %s: %+v", user, r)
	}
	var d struct{ Token string }
	json.Unmarshal(r.Data, &d)
	return d.Token
}

func (h *harness) userToken(role string) string {
	h.t.Helper()
	admin := h.login("admin", adminPassword)
	name := role + "-user"
	if r := h.call("POST", "/user", admin, map[string]string{"username": name, "password": "password-" + role, "role": role}); r.Code != 0 {
		h.t.Fatalf("create %s: %+v", role, r)
	}
	return h.login(name, "password-"+role)
}

func want(t testing.TB, r reply, status, code int) {
	t.Helper()
	if r.Status != status || r.Code != code {
		t.Fatalf("got HTTP %d code %d (%s: %s, data %s), want HTTP %d code %d", r.Status, r.Code, r.Msg, r.Message, r.Data, status, code)
	}
	if r.Code != 0 && (r.Msg == "" || r.Message == "") {
		t.Fatalf("error envelope without msg/message: %+v", r)
	}
}

func decodeData[T any](t testing.TB, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatalf("data %s: %v", r.Data, err)
	}
	return v
}

type page[T any] struct {
	Total, PageNum, PageSize, Pages int
	List                            []T
}

func TestEnvelopeAndLogin(t *testing.T) {
	h := newHarness(t)
	r := h.call("POST", "/login", "", map[string]string{"username": "admin", "password": adminPassword})
	want(t, r, 200, 0)
	if r.Msg != "SUCCESS" || r.Message != "success" {
		t.Fatalf("success envelope: %+v", r)
	}
	d := decodeData[struct{ Token, TokenType, ExpireTime, Username, Role string }](t, r)
	if d.Token == "" || d.TokenType != "Bearer" || d.Username != "admin" || d.Role != "admin" {
		t.Fatalf("login data %+v", d)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`).MatchString(d.ExpireTime) {
		t.Fatalf("expireTime %q is not yyyy-MM-dd HH:mm:ss", d.ExpireTime)
	}

	cases := []struct {
		name         string
		body         any
		status, code int
		inMessage    string
	}{
		{"wrong password", map[string]string{"username": "admin", "password": "nope-nope"}, 401, codeAuthorizeFailed, "wrong username or password"},
		{"unknown user", map[string]string{"username": "ghost", "password": "whatever1"}, 401, codeAuthorizeFailed, "wrong username or password"},
		{"missing password", map[string]string{"username": "admin"}, 400, codeParamInvalid, "required"},
		{"malformed JSON", `{"username": "admin",`, 400, codeParamInvalid, "JSON"},
		{"wrong type", `{"username": 5, "password": "x"}`, 400, codeParamInvalid, "username"},
		{"unknown field", `{"username": "admin", "password": "x", "otp": 1}`, 400, codeParamInvalid, "otp"},
		{"two values", `{"username":"a","password":"b"} {}`, 400, codeParamInvalid, "exactly one"},
		{"empty body", "", 400, codeParamInvalid, "required"},
		{"oversize body", `{"username":"` + strings.Repeat("a", 5000) + `","password":"x"}`, 413, codeRequestTooLarge, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.call("POST", "/login", "", c.body)
			want(t, r, c.status, c.code)
			if !strings.Contains(r.Message, c.inMessage) {
				t.Fatalf("message %q does not mention %q", r.Message, c.inMessage)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t)
	forge := func(secret []byte, exp time.Time, sub string) string {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "admq-manager", "sub": sub, "role": "admin", "iat": time.Now().Unix(), "exp": exp.Unix(), "gen": 0,
		}).SignedString(secret)
		return tok
	}
	admin := h.call("GET", "/user/info", h.login("admin", adminPassword), nil)
	adminID := decodeData[struct{ ID string }](t, admin).ID
	cases := []struct {
		name   string
		header string
	}{
		{"missing", ""},
		{"not bearer", "Basic YWRtaW46YWRtaW4="},
		{"garbage", "Bearer not.a.jwt"},
		{"forged with another secret", "Bearer " + forge(bytes.Repeat([]byte("x"), 32), time.Now().Add(time.Hour), adminID)},
		{"expired", "Bearer " + forge(h.secret, time.Now().Add(-time.Minute), adminID)},
		{"unknown user", "Bearer " + forge(h.secret, time.Now().Add(time.Hour), "12345")},
		{"alg none", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", h.srv.URL+Prefix+"/area", nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var r reply
			json.NewDecoder(resp.Body).Decode(&r)
			r.Status = resp.StatusCode
			want(t, r, 401, codeTokenInvalid)
		})
	}
	t.Run("valid token signed with our secret", func(t *testing.T) {
		want(t, h.call("GET", "/area", forge(h.secret, time.Now().Add(time.Hour), adminID), nil), 200, 0)
	})
}

func TestRoles(t *testing.T) {
	h := newHarness(t)
	viewer := h.userToken("viewer")
	operator := h.userToken("operator")
	admin := h.login("admin", adminPassword)

	want(t, h.call("GET", "/area", viewer, nil), 200, 0)
	want(t, h.call("GET", "/server", viewer, nil), 200, 0)
	want(t, h.call("POST", "/area", viewer, map[string]string{"code": "v", "area": "v"}), 403, codePermissionDeny)
	want(t, h.call("POST", "/agent/token", viewer, map[string]any{}), 403, codePermissionDeny)
	want(t, h.call("GET", "/audit", viewer, nil), 403, codePermissionDeny)

	want(t, h.call("POST", "/area", operator, map[string]string{"code": "op", "area": "op"}), 200, 0)
	want(t, h.call("POST", "/agent/token", operator, map[string]any{}), 403, codePermissionDeny)
	want(t, h.call("POST", "/user", operator, map[string]string{"username": "x", "password": "12345678", "role": "admin"}), 403, codePermissionDeny)

	want(t, h.call("POST", "/agent/token", admin, map[string]any{}), 200, 0)

	// A deleted user's token stops working at once.
	users := decodeData[page[struct{ ID, Username string }]](t, h.call("GET", "/user", admin, nil))
	for _, u := range users.List {
		if u.Username == "viewer-user" {
			want(t, h.call("DELETE", "/user", admin, map[string]string{"id": u.ID}), 200, 0)
		}
	}
	want(t, h.call("GET", "/area", viewer, nil), 401, codeTokenInvalid)
}

func TestAreas(t *testing.T) {
	h := newHarness(t)
	tok := h.login("admin", adminPassword)

	list := decodeData[page[struct{ ID, Code, Area, CreateTime, UpdateTime string }]](t, h.call("GET", "/area", tok, nil))
	if list.Total != 1 || list.List[0].Code != "default" || list.PageNum != 1 || list.PageSize != 10 || list.Pages != 1 {
		t.Fatalf("first start must have exactly the default area: %+v", list)
	}

	r := h.call("POST", "/area", tok, map[string]string{"code": "Test", "area": "test"})
	want(t, r, 200, 0)
	created := decodeData[struct{ ID, Code, Area string }](t, r)
	if created.Code != "Test" || created.Area != "test" || !regexp.MustCompile(`^\d+$`).MatchString(created.ID) {
		t.Fatalf("created %+v", created)
	}
	want(t, h.call("POST", "/area", tok, map[string]string{"code": "Test", "area": "again"}), 409, codeAreaExist)

	bad := []struct {
		name string
		body any
	}{
		{"empty code", map[string]string{"code": "", "area": "x"}},
		{"code with space", map[string]string{"code": "a b", "area": "x"}},
		{"missing area", map[string]string{"code": "x"}},
		{"area with control char", map[string]string{"code": "x", "area": "a\u0007"}},
		{"code too long", map[string]string{"code": strings.Repeat("c", 65), "area": "x"}},
		{"code is a number", `{"code": 7, "area": "x"}`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			want(t, h.call("POST", "/area", tok, c.body), 400, codeParamInvalid)
		})
	}
	if n := decodeData[page[struct{}]](t, h.call("GET", "/area", tok, nil)).Total; n != 2 {
		t.Fatalf("bad input changed the area list: %d areas", n)
	}

	for i := range 12 {
		want(t, h.call("POST", "/area", tok, map[string]string{"code": "p" + string(rune('a'+i)), "area": "paged"}), 200, 0)
	}
	p2 := decodeData[page[struct{ Code string }]](t, h.call("GET", "/area?pageNum=2&pageSize=5", tok, nil))
	if p2.Total != 14 || p2.Pages != 3 || p2.PageNum != 2 || p2.PageSize != 5 || len(p2.List) != 5 {
		t.Fatalf("page 2 of 5: %+v", p2)
	}
	for _, q := range []string{"pageNum=0", "pageSize=0", "pageSize=501", "pageNum=x", "pageSize=-1"} {
		want(t, h.call("GET", "/area?"+q, tok, nil), 400, codeParamInvalid)
	}

	t.Run("delete by body", func(t *testing.T) {
		want(t, h.call("DELETE", "/area", tok, map[string]string{"id": created.ID}), 200, 0)
		want(t, h.call("DELETE", "/area", tok, map[string]string{"id": created.ID}), 404, codeAreaNotExist)
	})
	t.Run("delete by query", func(t *testing.T) {
		r := h.call("POST", "/area", tok, map[string]string{"code": "q", "area": "q"})
		id := decodeData[struct{ ID string }](t, r).ID
		want(t, h.call("DELETE", "/area?id="+id, tok, nil), 200, 0)
	})
	t.Run("delete id errors", func(t *testing.T) {
		want(t, h.call("DELETE", "/area", tok, nil), 400, codeParamInvalid)
		want(t, h.call("DELETE", "/area", tok, map[string]string{"id": "abc"}), 400, codeParamInvalid)
		want(t, h.call("DELETE", "/area?id=-5", tok, nil), 400, codeParamInvalid)
		want(t, h.call("DELETE", "/area?id=1", tok, map[string]string{"id": "2"}), 400, codeParamInvalid)
		want(t, h.call("DELETE", "/area", tok, map[string]string{"id": "1995325829847502849"}), 404, codeAreaNotExist)
	})
	t.Run("delete an area in use", func(t *testing.T) {
		r := h.call("POST", "/area", tok, map[string]string{"code": "used", "area": "used"})
		id := decodeData[struct{ ID string }](t, r).ID
		want(t, h.call("POST", "/server", tok, map[string]any{"room": "used", "managerIp": "198.18.0.9"}), 200, 0)
		want(t, h.call("DELETE", "/area", tok, map[string]string{"id": id}), 409, codeAreaInUse)
	})
}

func TestServers(t *testing.T) {
	h := newHarness(t)
	tok := h.login("admin", adminPassword)
	good := map[string]any{
		"room": "default", "managerIp": "198.18.0.10", "sshPort": 22, "account": "root",
		"programDir": "/opt/admq", "dataDir": "/data/admq", "dataIp": "198.19.0.10", "cpuInfo": "test box", "cpuType": 1,
	}
	r := h.call("POST", "/server", tok, good)
	want(t, r, 200, 0)
	srv := decodeData[struct {
		ID, ManagerIP, DataIP, Room, AgentStatus, Password string
		SSHPort                                            int
	}](t, r)
	if srv.AgentStatus != "pending" || srv.Room != "默认可用区" || srv.DataIP != "198.19.0.10" || srv.Password != "" {
		t.Fatalf("created server %+v", srv)
	}

	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		m["managerIp"] = "198.18.0.77"
		m[k] = v
		return m
	}
	cases := []struct {
		name         string
		body         any
		status, code int
	}{
		{"duplicate managerIp", good, 409, codeServerExist},
		{"nested dirs", with("dataDir", "/opt/admq/data"), 400, codeServerDirIllegal},
		{"same dirs", with("dataDir", "/opt/admq"), 400, codeServerDirIllegal},
		{"unknown area", with("room", "mars"), 404, codeAreaNotExist},
		{"bad ip", with("managerIp", "300.1.1.1"), 400, codeParamInvalid},
		{"missing ip", with("managerIp", ""), 400, codeParamInvalid},
		{"relative dir", with("programDir", "opt/admq"), 400, codeParamInvalid},
		{"dotdot dir", with("programDir", "/opt/../etc"), 400, codeParamInvalid},
		{"bad port", with("sshPort", 70000), 400, codeParamInvalid},
		{"port as string", with("sshPort", "22"), 400, codeParamInvalid},
		{"password not kept yet", with("password", "secret"), 400, codeParamInvalid},
		{"unknown field", with("colour", "blue"), 400, codeParamInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want(t, h.call("POST", "/server", tok, c.body), c.status, c.code)
		})
	}
	list := decodeData[page[struct{ ID string }]](t, h.call("GET", "/server", tok, nil))
	if list.Total != 1 {
		t.Fatalf("bad input created servers: %+v", list)
	}
	one := decodeData[page[struct{ ID string }]](t, h.call("GET", "/server?id="+srv.ID, tok, nil))
	if one.Total != 1 || one.List[0].ID != srv.ID {
		t.Fatalf("by id: %+v", one)
	}
	want(t, h.call("GET", "/server?agentStatus=sleepy", tok, nil), 400, codeParamInvalid)
	pending := decodeData[page[struct{ ID string }]](t, h.call("GET", "/server?agentStatus=pending", tok, nil))
	online := decodeData[page[struct{ ID string }]](t, h.call("GET", "/server?agentStatus=online", tok, nil))
	if pending.Total != 1 || online.Total != 0 {
		t.Fatalf("status filters: pending %d online %d", pending.Total, online.Total)
	}
	want(t, h.call("GET", "/server/ping?id="+srv.ID, tok, nil), 502, codeServerCannotConnect)
	want(t, h.call("GET", "/server/ping?id=42", tok, nil), 404, codeServerNotExist)
	want(t, h.call("DELETE", "/server", tok, map[string]string{"id": srv.ID}), 200, 0)
	want(t, h.call("DELETE", "/server", tok, map[string]string{"id": srv.ID}), 404, codeServerNotExist)
}

func TestJoinTokens(t *testing.T) {
	h := newHarness(t)
	tok := h.login("admin", adminPassword)
	r := h.call("POST", "/agent/token", tok, map[string]any{"description": "rack 7", "maxUses": 5, "ttlSeconds": 3600})
	want(t, r, 200, 0)
	created := decodeData[struct {
		ID, Token, CACertHash, JoinCommand, Status, Description, ExpireTime string
		MaxUses, Uses                                                       int
	}](t, r)
	if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}::sha256:[0-9a-f]{64}$`).MatchString(created.Token) ||
		!strings.HasPrefix(created.Token, created.ID+".") || !strings.HasSuffix(created.Token, created.CACertHash) {
		t.Fatalf("join token %+v", created)
	}
	if created.MaxUses != 5 || created.Status != "active" || created.ExpireTime == "" ||
		!strings.Contains(created.JoinCommand, "--token "+created.Token) || !strings.Contains(created.JoinCommand, ":12306") {
		t.Fatalf("created %+v", created)
	}

	def := decodeData[struct {
		MaxUses    int
		ExpireTime *string
	}](t, h.call("POST", "/agent/token", tok, nil))
	if def.MaxUses != 1 || def.ExpireTime == nil {
		t.Fatalf("default token must be single-use and expire: %+v", def)
	}
	never := decodeData[struct{ ExpireTime *string }](t, h.call("POST", "/agent/token", tok, map[string]any{"ttlSeconds": 0}))
	if never.ExpireTime != nil {
		t.Fatalf("ttlSeconds 0 must never expire: %+v", never)
	}
	for _, b := range []any{
		map[string]any{"maxUses": -1}, map[string]any{"ttlSeconds": -5}, map[string]any{"ttlSeconds": 1e10},
		map[string]any{"areaId": "123"}, map[string]any{"description": strings.Repeat("d", 300)},
	} {
		r := h.call("POST", "/agent/token", tok, b)
		if r.Code == 0 {
			t.Fatalf("%v: accepted", b)
		}
	}

	list := decodeData[page[struct{ ID, Status, Token string }]](t, h.call("GET", "/agent/token", tok, nil))
	if list.Total != 3 {
		t.Fatalf("token list: %+v", list)
	}
	for _, tk := range list.List {
		if tk.Token != "" {
			t.Fatalf("the list must never show a secret: %+v", tk)
		}
	}
	want(t, h.call("DELETE", "/agent/token", tok, map[string]string{"id": created.ID}), 200, 0)
	after := decodeData[page[struct{ ID, Status string }]](t, h.call("GET", "/agent/token?pageSize=100", tok, nil))
	for _, tk := range after.List {
		if tk.ID == created.ID && tk.Status != "revoked" {
			t.Fatalf("revoked token shows %q", tk.Status)
		}
	}
	want(t, h.call("DELETE", "/agent/token?id=zzzzzz", tok, nil), 404, codeJoinTokenNotExist)
	want(t, h.call("DELETE", "/agent/token?id=../etc", tok, nil), 400, codeParamInvalid)
}

func TestUsersAndPasswords(t *testing.T) {
	h := newHarness(t)
	admin := h.login("admin", adminPassword)
	want(t, h.call("POST", "/user", admin, map[string]string{"username": "ops", "password": "short", "role": "operator"}), 400, codeParamInvalid)
	want(t, h.call("POST", "/user", admin, map[string]string{"username": "ops", "password": "long-enough", "role": "root"}), 400, codeParamInvalid)
	want(t, h.call("POST", "/user", admin, map[string]string{"username": "ops", "password": "long-enough", "role": "operator"}), 200, 0)
	want(t, h.call("POST", "/user", admin, map[string]string{"username": "ops", "password": "long-enough", "role": "viewer"}), 409, codeUserExist)

	me := decodeData[struct{ ID string }](t, h.call("GET", "/user/info", admin, nil))
	want(t, h.call("DELETE", "/user", admin, map[string]string{"id": me.ID}), 400, codeParamInvalid)

	ops := h.login("ops", "long-enough")
	want(t, h.call("PUT", "/user/password", ops, map[string]string{"oldPassword": "wrong-one", "newPassword": "brand-new-pw"}), 401, codeAuthorizeFailed)
	want(t, h.call("PUT", "/user/password", ops, map[string]string{"oldPassword": "long-enough", "newPassword": "brand-new-pw"}), 200, 0)
	want(t, h.call("GET", "/area", ops, nil), 401, codeTokenInvalid)
	h.login("ops", "brand-new-pw")
}

// TestPasswordChangeEndsEveryToken is the outside probe's break #4: a
// token issued up to a second or two before a password change stayed
// valid for its 12 hours (whole-second iat compared with a one-second
// slack). Now every token issued before the change dies at once, however
// close, and a token without iat is refused.
func TestPasswordChangeEndsEveryToken(t *testing.T) {
	h := newHarness(t)
	admin := h.login("admin", adminPassword)
	want(t, h.call("POST", "/user", admin, map[string]string{"username": "ops", "password": "long-enough", "role": "operator"}), 200, 0)
	before := []string{h.login("ops", "long-enough"), h.login("ops", "long-enough")}
	want(t, h.call("PUT", "/user/password", before[0], map[string]string{"oldPassword": "long-enough", "newPassword": "brand-new-pw"}), 200, 0)
	for i, tok := range before {
		if r := h.call("GET", "/user/info", tok, nil); r.Code != codeTokenInvalid {
			t.Errorf("token %d issued just before the password change: HTTP %d code %d, want %d", i, r.Status, r.Code, codeTokenInvalid)
		}
	}
	after := h.login("ops", "brand-new-pw")
	want(t, h.call("GET", "/user/info", after, nil), 200, 0)
	want(t, h.call("GET", "/user/info", admin, nil), 200, 0) // another user's token lives on

	// A token signed with the right key but without iat.
	me := decodeData[struct{ ID string }](t, h.call("GET", "/user/info", after, nil))
	var c map[string]any
	parts := strings.Split(after, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(raw, &c); err != nil || c["sub"] != me.ID {
		t.Fatalf("claims %s: %v", raw, err)
	}
	delete(c, "iat")
	noIat, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(c)).SignedString(h.secret)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.call("GET", "/user/info", noIat, nil); r.Code != codeTokenInvalid {
		t.Errorf("token without iat: HTTP %d code %d, want %d", r.Status, r.Code, codeTokenInvalid)
	}
}

func TestAuditRecordsChangesOnly(t *testing.T) {
	h := newHarness(t)
	tok := h.login("admin", adminPassword)
	h.call("POST", "/area", tok, map[string]string{"code": "a1", "area": "one"})
	h.call("POST", "/area", tok, map[string]string{"code": "a1", "area": "dup"})
	h.call("GET", "/area", tok, nil)
	h.call("POST", "/login", "", map[string]string{"username": "admin", "password": "bad-password"})
	h.call("DELETE", "/area", "", map[string]string{"id": "1"})

	type entry struct {
		Username, Method, Path, Detail string
		Status, Code                   int
	}
	log := decodeData[page[entry]](t, h.call("GET", "/audit?pageSize=50", tok, nil))
	var got []string
	for _, e := range log.List {
		if e.Method == "GET" {
			t.Fatalf("GET audited: %+v", e)
		}
		got = append(got, e.Method+" "+e.Path+" "+e.Username+" "+strconv.Itoa(e.Status)+" "+strconv.Itoa(e.Code))
	}
	wantRows := []string{
		"DELETE /admq-manager/area  401 202",
		"POST /admq-manager/login  401 6",
		"POST /admq-manager/area admin 409 1263",
		"POST /admq-manager/area admin 200 0",
		"POST /admq-manager/login admin 200 0",
	}
	if strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}
	for _, e := range log.List {
		if strings.Contains(e.Detail, adminPassword) || strings.Contains(e.Detail, "bad-password") {
			t.Fatalf("audit detail leaks a password: %+v", e)
		}
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	h := newHarness(t)
	want(t, h.call("GET", "/nothing-here", "", nil), 404, codeNotFound)
	want(t, h.call("PATCH", "/area", "", nil), 405, codeMethodNotAllowed)
}

func TestHealthAndMetrics(t *testing.T) {
	h := newHarness(t)
	want(t, h.call("GET", "/health", "", nil), 200, 0)
	h.call("GET", "/area", "", nil)
	resp, err := http.Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `admq_http_request_duration_seconds_count{method="GET",route="/admq-manager/area",status="401"} 1`) {
		t.Fatalf("metrics lack the request by route and status:\n%s", body)
	}
}

func TestLoginThrottle(t *testing.T) {
	h := newHarness(t)
	for i := range 5 {
		r := h.call("POST", "/login", "", map[string]string{"username": "admin", "password": "guess-" + strconv.Itoa(i)})
		want(t, r, 401, codeAuthorizeFailed)
	}
	// The sixth try is refused before the password is looked at, even the right one.
	r := h.call("POST", "/login", "", map[string]string{"username": "admin", "password": adminPassword})
	want(t, r, 429, codeTooManyAttempts)
	if !strings.Contains(r.Message, "try again in") {
		t.Fatalf("message %q does not say when to retry", r.Message)
	}
	// A forged X-Forwarded-For does not make a new client.
	req, _ := http.NewRequest("POST", h.srv.URL+Prefix+"/login", strings.NewReader(`{"username":"admin","password":"`+adminPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("X-Forwarded-For dodged the throttle: HTTP %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestLoginThrottleRefills(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	th := newLoginThrottle(12*time.Second, 5, 10, func() time.Time { return now })
	for range 5 {
		if d, _, _ := th.reserve("a", "u"); d != 0 {
			t.Fatal("throttled before the burst was used")
		}
	}
	if d, _, _ := th.reserve("a", "v"); d <= 0 || d > 12*time.Second {
		t.Fatalf("after 5 failures: retry after %v", d)
	}
	// A right password gives its attempt back, after its check took time.
	d, _, refund := th.reserve("b", "u")
	if d != 0 {
		t.Fatal("another address is throttled")
	}
	now = now.Add(100 * time.Millisecond)
	refund()
	for range 5 {
		if d, _, _ := th.reserve("c", "u"); d != 0 {
			t.Fatalf("user u throttled after 5 failures and a success: %v", d)
		}
	}
	if d, _, _ := th.reserve("d", "u"); d <= 0 {
		t.Fatal("user u not throttled after 10 failures")
	}
	now = now.Add(12 * time.Second)
	if d, _, _ := th.reserve("a", "w"); d != 0 {
		t.Fatal("not refilled after one interval")
	}
}

// TestLoginThrottleFull: a spray of new addresses and names cannot grow
// the table past its bound, nor push out the record of a throttled
// guesser. While the table is full of recent failures, attempts needing a
// new entry are refused; known ones go on as before; once entries have
// refilled, new ones get in again.
func TestLoginThrottleFull(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	th := newLoginThrottle(12*time.Second, 5, 10, func() time.Time { return now })
	th.maxKeys = 100
	for range 5 {
		th.reserve("guesser", "admin")
	}
	if d, _, _ := th.reserve("guesser", "admin"); d <= 0 {
		t.Fatal("guesser not throttled after 5 failures")
	}
	for i := range 200 {
		now = now.Add(10 * time.Millisecond)
		th.reserve(fmt.Sprintf("10.0.%d.%d", i/256, i%256), fmt.Sprintf("user%d", i))
	}
	if n := len(th.keys); n > th.maxKeys {
		t.Fatalf("table holds %d keys, bound %d", n, th.maxKeys)
	}
	if d, _, _ := th.reserve("guesser", "admin"); d <= 0 {
		t.Fatal("the spray wiped the guesser's record")
	}
	d, full, _ := th.reserve("10.9.9.9", "newcomer")
	if !full || d < time.Second || d > 120*time.Second {
		t.Fatalf("new client while full: wait %v full %v, want refused as full with a wait of 1-120 s", d, full)
	}
	if d, full, _ := th.reserve("10.0.0.1", "user1"); full || d != 0 {
		t.Fatalf("known client while full: wait %v full %v, want its attempt", d, full)
	}
	now = now.Add(2 * time.Minute)
	if d, full, _ := th.reserve("10.9.9.9", "newcomer"); full || d != 0 {
		t.Fatalf("new client after entries refilled: wait %v full %v, want its attempt", d, full)
	}
}
