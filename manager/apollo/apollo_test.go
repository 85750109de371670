package apollo

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/store/storetest"
)

type harness struct {
	srv   *httptest.Server
	s     *Server
	token string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	db := storetest.Open(t)
	gen, _ := ids.NewGenerator(1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fleetSvc := fleet.NewService(db, fleet.NewPresenceTracker(db, time.Now, time.Second, log), nil, gen, time.Now)
	if err := fleetSvc.EnsureDefaultArea(t.Context()); err != nil {
		t.Fatal(err)
	}
	catalog := NewCatalog(db, db)
	consumers := consumer.NewService(db, catalog, gen, time.Now)
	issued, err := consumers.Create(t.Context(), consumer.Spec{AppID: "ci", Name: "CI", OrgID: "dev", OrgName: "Dev", OwnerName: "ops", OwnerEmail: "ops@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Deps{Env: "PRO", Consumers: consumers, Users: db, Catalog: catalog, Areas: fleetSvc, Audit: db,
		IDs: gen, Now: time.Now, Log: log, Registerer: prometheus.NewRegistry()})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &harness{srv: srv, s: s, token: issued.Token}
}

// do sends what Apollo's bash functions send: the token as it is and a
// JSON content type, whatever the method.
func (h *harness) do(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNormalizeEnv(t *testing.T) {
	for in, want := range map[string]string{"pro": "PRO", " Prod ": "PRO", "PROD": "PRO", "dev": "DEV", "fws": "FAT", "uat": "UAT"} {
		if got := NormalizeEnv(in); got != want {
			t.Errorf("NormalizeEnv(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"", "  ", "a b", "PRO/1", strings.Repeat("A", 33)} {
		if _, err := ValidateEnv(bad); err == nil {
			t.Errorf("ValidateEnv(%q) accepted", bad)
		}
	}
}

func TestErrorBodies(t *testing.T) {
	h := newHarness(t)
	errRe := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$`)
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		exception                 string
	}{
		{"no token", "GET", "/openapi/v1/apps", "", 401, "UnauthorizedException"},
		{"bearer token", "GET", "/openapi/v1/apps", "Bearer " + h.token, 401, "UnauthorizedException"},
		{"unknown token", "GET", "/openapi/v1/apps", strings.Repeat("a", 40), 401, "UnauthorizedException"},
		{"unknown path", "GET", "/openapi/v1/nothing", h.token, 404, "NotFoundException"},
		{"wrong method", "DELETE", "/openapi/v1/envs", h.token, 405, "HttpRequestMethodNotSupportedException"},
		{"other env", "GET", "/openapi/v1/envs/DEV/apps/mq1/clusters/default", h.token, 400, "BadRequestException"},
		{"no grant", "GET", "/openapi/v1/envs/pro/apps/mq1/clusters/default", h.token, 403, "AccessDeniedException"},
		{"no grant on envclusters", "GET", "/openapi/v1/apps/mq1/envclusters", h.token, 403, "AccessDeniedException"},
		{"app creation", "POST", "/openapi/v1/apps", h.token, 400, "BadRequestException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.do(t, tc.method, tc.path, tc.token)
			var e struct {
				Status    int
				Message   string
				Timestamp string
				Exception string
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("HTTP %d, body %q: %v", status, body, err)
			}
			if status != tc.status || e.Status != tc.status || e.Exception != tc.exception || e.Message == "" || !errRe.MatchString(e.Timestamp) {
				t.Fatalf("HTTP %d %s, want %d %s", status, body, tc.status, tc.exception)
			}
		})
	}
}

func TestTokenReads(t *testing.T) {
	h := newHarness(t)
	for path, want := range map[string]string{
		"/openapi/v1/envs":             `["PRO"]`,
		"/openapi/v1//organizations":   `[{"orgId":"default","orgName":"默认可用区"}]`, // Java's client doubles the slash
		"/openapi/v1/apps":             `[]`,
		"/openapi/v1/apps/authorized":  `[]`,
		"/openapi/v1/apps?appIds=a,b,": `[]`,
	} {
		if status, body := h.do(t, "GET", path, h.token); status != 200 || body != want {
			t.Errorf("GET %s: HTTP %d %s, want %s", path, status, body, want)
		}
	}
}

func TestGsonTime(t *testing.T) {
	loc := time.FixedZone("CST", 8*3600)
	b, _ := json.Marshal(struct {
		T gsonTime `json:"t,omitzero"`
		Z gsonTime `json:"z,omitzero"`
	}{T: gsonTime(time.Date(2016, 8, 11, 12, 6, 41, 818_000_000, loc))})
	if string(b) != `{"t":"2016-08-11T12:06:41.818+0800"}` {
		t.Fatalf("got %s", b)
	}
}

func TestOpenAPIDocumentListsEveryRoute(t *testing.T) {
	h := newHarness(t)
	status, raw := h.do(t, "GET", "/openapi/v1/openapi.json", "")
	if status != 200 {
		t.Fatalf("HTTP %d: %s", status, raw)
	}
	doc, err := openapi3.NewLoader().LoadFromData([]byte(raw))
	if err != nil {
		t.Fatalf("served document does not load: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("served document is not valid OpenAPI 3: %v", err)
	}
	var documented, served []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	for _, r := range h.s.echo.Routes() {
		served = append(served, r.Method+" "+openAPIPath(r.Path))
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("documented routes:\n%s\n\nserved routes:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
	if !strings.Contains(doc.Info.Description, "| appId | an ADMQ cluster's name |") {
		t.Error("the document does not give the mapping")
	}
}

// TestDTOFields: what Apollo's clients read of an item and a cluster. An
// item has its lineNum (its place in the list, from 1) and a display name
// beside each author; a key whose author was not recorded names
// admq-import. A cluster has its id and parentClusterId 0.
func TestDTOFields(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	for _, tc := range []struct {
		name string
		dto  any
		want string
	}{
		{"item with authors", itemDTO(item{Key: "k", Value: "v", CreatedBy: "alice", UpdatedBy: "bob", CreatedAt: at, UpdatedAt: at}, 0),
			`{"key":"k","type":0,"value":"v","lineNum":1,"dataChangeCreatedBy":"alice","dataChangeLastModifiedBy":"bob",` +
				`"dataChangeCreatedByDisplayName":"alice","dataChangeLastModifiedByDisplayName":"bob",` +
				`"dataChangeCreatedTime":"2026-01-02T03:04:05.006+0000","dataChangeLastModifiedTime":"2026-01-02T03:04:05.006+0000"}`},
		{"item imported before authors were recorded", itemDTO(item{Key: "k", Value: "", CreatedAt: at, UpdatedAt: at}, 6),
			`{"key":"k","type":0,"value":"","lineNum":7,"dataChangeCreatedBy":"admq-import","dataChangeLastModifiedBy":"admq-import",` +
				`"dataChangeCreatedByDisplayName":"admq-import","dataChangeLastModifiedByDisplayName":"admq-import",` +
				`"dataChangeCreatedTime":"2026-01-02T03:04:05.006+0000","dataChangeLastModifiedTime":"2026-01-02T03:04:05.006+0000"}`},
		{"cluster", ClusterDTO{ID: 1 << 60, Name: "storage-1", AppID: "mq1", baseDTO: base("", "", at, at)},
			`{"id":1152921504606846976,"name":"storage-1","appId":"mq1","parentClusterId":0,` +
				`"dataChangeCreatedTime":"2026-01-02T03:04:05.006+0000","dataChangeLastModifiedTime":"2026-01-02T03:04:05.006+0000"}`},
	} {
		b, err := json.Marshal(tc.dto)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, b, tc.want)
		}
	}
}
