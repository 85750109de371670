package testenv

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// listAll is the page size that lists everything a test makes.
const listAll = "pageSize=500"

// Server is a row of GET /server, with the fields the suites check.
type Server struct {
	ID           string `json:"id"`
	ManagerIP    string `json:"managerIp"`
	SSHPort      int    `json:"sshPort"`
	Account      string `json:"account"`
	Password     string `json:"password"`
	PrivateKey   string `json:"privateKey"`
	ProgramDir   string `json:"programDir"`
	DataDir      string `json:"dataDir"`
	AgentStatus  string `json:"agentStatus"`
	LastSeen     string `json:"lastSeen"`
	AgentVersion string `json:"agentVersion"`
	Hostname     string `json:"hostname"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	CPUs         int    `json:"cpus"`
	MemoryTotal  uint64 `json:"memoryTotal"`
	Facts        struct {
		StateDir string `json:"stateDir"`
	} `json:"facts"`
}

// Servers lists servers; query is "" or "?..." (filters), and the page
// holds every server.
func (c *Client) Servers(t testing.TB, query string) (total int, list []Server) {
	t.Helper()
	var page struct {
		Total int      `json:"total"`
		List  []Server `json:"list"`
	}
	if query == "" {
		query = "?" + listAll
	} else {
		query += "&" + listAll
	}
	c.OK(t, http.MethodGet, "/server"+query, nil, &page)
	return page.Total, page.List
}

// Server returns one server by id; ok is false if there is none.
func (c *Client) Server(t testing.TB, id string) (s Server, ok bool) {
	t.Helper()
	total, list := c.Servers(t, "?id="+url.QueryEscape(id))
	if total == 0 || len(list) == 0 {
		return Server{}, false
	}
	return list[0], true
}

// MustServer returns one server by id and fails the test if there is none.
func (c *Client) MustServer(t testing.TB, id string) Server {
	t.Helper()
	s, ok := c.Server(t, id)
	if !ok {
		t.Fatalf("server %s not found", id)
	}
	return s
}

// ServerByIP returns the server with managerIp ip; ok is false if there is
// none.
func (c *Client) ServerByIP(t testing.TB, ip string) (s Server, ok bool) {
	t.Helper()
	_, list := c.Servers(t, "")
	for _, s := range list {
		if s.ManagerIP == ip {
			return s, true
		}
	}
	return Server{}, false
}

// WaitStatus waits until the server's agent has status and returns how
// long it took.
func (c *Client) WaitStatus(t testing.TB, id, status string, timeout time.Duration) time.Duration {
	t.Helper()
	return Eventually(t, timeout, fmt.Sprintf("server %s to be %s", id, status), func() bool {
		s, ok := c.Server(t, id)
		return ok && s.AgentStatus == status
	})
}

// Token is a join token as GET and POST /agent/token show it.
type Token struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	MaxUses     int    `json:"maxUses"`
	Uses        int    `json:"uses"`
	Status      string `json:"status"`
	ServerID    string `json:"serverId"`
	Token       string `json:"token"` // the join string; only when created
	CACertHash  string `json:"caCertHash"`
}

// CreateToken makes a join token described by the test's name; ttlSeconds
// 0 means the API default. The test fails unless the join string is
// <id>.<secret>::sha256:<hex>.
func (c *Client) CreateToken(t testing.TB, maxUses int, ttlSeconds int64) Token {
	t.Helper()
	req := map[string]any{"maxUses": maxUses, "description": t.Name()}
	if ttlSeconds > 0 {
		req["ttlSeconds"] = ttlSeconds
	}
	var tok Token
	c.OK(t, http.MethodPost, "/agent/token", req, &tok)
	if tok.ID == "" || !strings.HasPrefix(tok.Token, tok.ID+".") || !strings.Contains(tok.Token, "::sha256:") {
		t.Fatalf("created token %+v: want a join string <id>.<secret>::sha256:<hex>", tok)
	}
	return tok
}

// Tokens lists every join token.
func (c *Client) Tokens(t testing.TB) []Token {
	t.Helper()
	var page struct {
		List []Token `json:"list"`
	}
	c.OK(t, http.MethodGet, "/agent/token?"+listAll, nil, &page)
	return page.List
}

// TokenByID finds a token in the token list or fails the test.
func (c *Client) TokenByID(t testing.TB, id string) Token {
	t.Helper()
	for _, tok := range c.Tokens(t) {
		if tok.ID == id {
			return tok
		}
	}
	t.Fatalf("token %s is not in the token list", id)
	return Token{}
}

// AuditDetails is the audit log as text, one "<path> <detail>" line per
// entry.
func (c *Client) AuditDetails(t testing.TB) string {
	t.Helper()
	var page struct {
		List []struct {
			Path   string `json:"path"`
			Detail string `json:"detail"`
		} `json:"list"`
	}
	c.OK(t, http.MethodGet, "/audit?"+listAll, nil, &page)
	var b strings.Builder
	for _, e := range page.List {
		fmt.Fprintf(&b, "%s %s\n", e.Path, e.Detail)
	}
	return b.String()
}

// Ping makes a round trip to the server's agent through the tunnel
// (GET /server/ping), which must succeed, and returns its time in ms.
func (c *Client) Ping(t testing.TB, id string) float64 {
	t.Helper()
	var p struct {
		RttMs float64 `json:"rttMs"`
	}
	c.OK(t, http.MethodGet, "/server/ping?id="+url.QueryEscape(id), nil, &p)
	return p.RttMs
}
