package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiClient talks to the manager's console API and metrics endpoint on
// loopback.
type apiClient struct {
	base  string // http://127.0.0.1:PORT
	hc    *http.Client
	token string
}

func newAPIClient(httpAddr string) *apiClient {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	}
	return &apiClient{base: "http://" + httpAddr, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (a *apiClient) close() { a.hc.CloseIdleConnections() }

type envelope struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// call sends a console API request and decodes the envelope's data into out
// (if not nil). A non-zero envelope code is an error.
func (a *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+"/admq-manager"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: HTTP %d, not an envelope: %s", method, path, resp.StatusCode, truncate(string(raw), 200))
	}
	if env.Code != 0 {
		return fmt.Errorf("%s %s: HTTP %d code %d %s: %s", method, path, resp.StatusCode, env.Code, env.Msg, env.Message)
	}
	if out != nil && len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("%s %s: decode data: %w", method, path, err)
		}
	}
	return nil
}

func (a *apiClient) health(ctx context.Context) error {
	return a.call(ctx, http.MethodGet, "/health", nil, nil)
}

func (a *apiClient) login(ctx context.Context, user, password string) error {
	var out struct {
		Token string `json:"token"`
	}
	if err := a.call(ctx, http.MethodPost, "/login", map[string]string{"username": user, "password": password}, &out); err != nil {
		return err
	}
	if out.Token == "" {
		return fmt.Errorf("login: no token in the answer")
	}
	a.token = out.Token
	return nil
}

// createJoinToken returns the agent token "<id>.<secret>" and the CA pin.
func (a *apiClient) createJoinToken(ctx context.Context, maxUses int, ttl time.Duration) (token, pin string, err error) {
	var out struct {
		Token string `json:"token"`
	}
	body := map[string]any{"maxUses": maxUses, "ttlSeconds": int64(ttl / time.Second), "description": "load test"}
	if err := a.call(ctx, http.MethodPost, "/agent/token", body, &out); err != nil {
		return "", "", err
	}
	token, pin, ok := strings.Cut(out.Token, "::")
	if !ok || token == "" || pin == "" {
		return "", "", fmt.Errorf("join token %q: want <id>.<secret>::sha256:<hex>", out.Token)
	}
	return token, pin, nil
}

type serverRow struct {
	ID          string `json:"id"`
	AgentStatus string `json:"agentStatus"`
	ManagerIP   string `json:"managerIp"`
}

type serverPage struct {
	Total int         `json:"total"`
	List  []serverRow `json:"list"`
}

func (a *apiClient) servers(ctx context.Context, q url.Values) (serverPage, error) {
	var p serverPage
	err := a.call(ctx, http.MethodGet, "/server?"+q.Encode(), nil, &p)
	return p, err
}

// onlineTotal is the number of servers the API lists as online.
func (a *apiClient) onlineTotal(ctx context.Context) (int, error) {
	p, err := a.servers(ctx, url.Values{"agentStatus": {"online"}, "pageSize": {"1"}})
	return p.Total, err
}

// agentStatus is the agentStatus of one server.
func (a *apiClient) agentStatus(ctx context.Context, id string) (string, error) {
	p, err := a.servers(ctx, url.Values{"id": {id}})
	if err != nil {
		return "", err
	}
	if len(p.List) != 1 {
		return "", fmt.Errorf("server %s: %d rows", id, len(p.List))
	}
	return p.List[0].AgentStatus, nil
}

// ping asks the manager to ping the agent through the tunnel; it returns the
// round trip the manager measured.
func (a *apiClient) ping(ctx context.Context, id string) (time.Duration, error) {
	var out struct {
		RttMs float64 `json:"rttMs"`
	}
	if err := a.call(ctx, http.MethodGet, "/server/ping?id="+url.QueryEscape(id), nil, &out); err != nil {
		return 0, err
	}
	return time.Duration(out.RttMs * float64(time.Millisecond)), nil
}

// metrics is one scrape of /metrics: series ("name" or "name{labels}") to
// value.
type metrics map[string]float64

func (a *apiClient) metrics(ctx context.Context) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(raw)), nil
}

// parseMetrics reads the Prometheus text format, enough for the series the
// manager exposes (no timestamps, no escaped braces in label values).
func parseMetrics(text string) metrics {
	m := make(metrics)
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		var series, rest string
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			series, rest = line[:j+1], line[j+1:]
		} else {
			series, rest, _ = strings.Cut(line, " ")
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		m[series] = v
	}
	return m
}

// get is the value of an unlabelled series, or -1 when absent.
func (m metrics) get(name string) float64 {
	if v, ok := m[name]; ok {
		return v
	}
	return -1
}

// sum adds up every series of name whose labels contain all the substrings.
func (m metrics) sum(name string, labelSubstrings ...string) float64 {
	var total float64
	for series, v := range m {
		n, labels, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		match := true
		for _, s := range labelSubstrings {
			if !strings.Contains(labels, s) {
				match = false
				break
			}
		}
		if match {
			total += v
		}
	}
	return total
}
