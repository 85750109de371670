package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// DefaultClientTimeout bounds one console request unless WithTimeout says
// otherwise.
const DefaultClientTimeout = 30 * time.Second

// Envelope is the console API's answer: {code, msg, message, data}.
type Envelope struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// Client is a client of a manager's console API, logged in as a console
// user (the admin, unless made by ClientAs).
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// ClientOption adjusts a Client made by Manager.Client.
type ClientOption func(*Client)

// WithTimeout bounds each request by d instead of DefaultClientTimeout. A
// suite that adds servers over SSH needs minutes: POST /server answers only
// once the bootstrapped agent is online.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.hc.Timeout = d }
}

// Client returns a console API client logged in as the admin, with the
// manager's admin password; the test fails if the login does.
func (m *Manager) Client(t testing.TB, opts ...ClientOption) *Client {
	t.Helper()
	return NewClient(t, m.httpAddr, m.cfg.AdminPassword, opts...)
}

// ClientAs returns a console API client logged in as the console user
// username with password; the test fails if the login does.
func (m *Manager) ClientAs(t testing.TB, username, password string, opts ...ClientOption) *Client {
	t.Helper()
	return newClient(t, m.httpAddr, username, password, opts...)
}

// NewClient returns a client of the console API at httpAddr (host:port)
// logged in as the admin with password; the test fails if the login does.
func NewClient(t testing.TB, httpAddr, password string, opts ...ClientOption) *Client {
	t.Helper()
	return newClient(t, httpAddr, "admin", password, opts...)
}

func newClient(t testing.TB, httpAddr, username, password string, opts ...ClientOption) *Client {
	t.Helper()
	c := &Client{base: "http://" + httpAddr + "/admq-manager", hc: &http.Client{Timeout: DefaultClientTimeout}}
	for _, o := range opts {
		o(c)
	}
	env, status := c.Do(t, http.MethodPost, "/login", map[string]string{"username": username, "password": password})
	if status != http.StatusOK || env.Code != 0 {
		t.Fatalf("login: HTTP %d code %d %s", status, env.Code, env.Message)
	}
	var d struct {
		Token string `json:"token"`
	}
	Decode(t, env.Data, &d)
	if d.Token == "" {
		t.Fatal("login returned no token")
	}
	c.token = d.Token
	return c
}

// Try makes one request to path under the API root and returns the answer
// and its HTTP status; body, if not nil, is sent as JSON. An error means no
// envelope came back.
func (c *Client) Try(method, path string, body any) (Envelope, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Envelope{}, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return Envelope{}, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req)
}

// Do is Try that fails the test if no envelope came back; any answer,
// errors included, is returned.
func (c *Client) Do(t testing.TB, method, path string, body any) (Envelope, int) {
	t.Helper()
	env, status, err := c.Try(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return env, status
}

// OK makes a request that must succeed (HTTP 200, code 0) and decodes its
// data into out, if out is not nil.
func (c *Client) OK(t testing.TB, method, path string, body, out any) {
	t.Helper()
	env, status := c.Do(t, method, path, body)
	if status != http.StatusOK || env.Code != 0 {
		t.Fatalf("%s %s: HTTP %d code %d (%s) %s %s", method, path, status, env.Code, env.Msg, env.Message, env.Data)
	}
	if out != nil {
		Decode(t, env.Data, out)
	}
}

// Decode unmarshals raw into out or fails the test.
func Decode(t testing.TB, raw json.RawMessage, out any) {
	t.Helper()
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}
