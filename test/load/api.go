package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
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
	if body == nil {
		return a.do(ctx, method, path, nil, "", out)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return a.do(ctx, method, path, bytes.NewReader(b), "application/json", out)
}

// do is call with a body of its content type (none when rd is nil).
func (a *apiClient) do(ctx context.Context, method, path string, rd io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+"/admq-manager"+path, rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
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

// check GETs path and checks only that the envelope's code, its first
// field, is 0: the reconnect storm's API clients run beside the simulated
// agents, and decoding every page would take CPU from them.
func (a *apiClient) check(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/admq-manager"+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var tok [3]json.Token
	for i := range tok {
		if tok[i], err = dec.Token(); err != nil {
			return fmt.Errorf("GET %s: HTTP %d, not an envelope: %w", path, resp.StatusCode, err)
		}
	}
	if _, err := io.Copy(io.Discard, io.MultiReader(dec.Buffered(), resp.Body)); err != nil {
		return fmt.Errorf("GET %s: read body: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK || tok[0] != json.Delim('{') || tok[1] != "code" || tok[2] != float64(0) {
		return fmt.Errorf("GET %s: HTTP %d, envelope starts %v %v %v", path, resp.StatusCode, tok[0], tok[1], tok[2])
	}
	return nil
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
		if n == name && containsAll(labels, labelSubstrings) {
			total += v
		}
	}
	return total
}

// histogram is the merged buckets of the series of one Prometheus histogram
// that match some label substrings.
type histogram struct {
	les    []float64 // upper bounds, ascending, +Inf last
	counts []float64 // cumulative counts
	sum    float64
	count  float64
}

// histogram merges name's series (name_bucket, name_sum, name_count) whose
// labels contain all the substrings.
func (m metrics) histogram(name string, labelSubstrings ...string) histogram {
	byLE := make(map[float64]float64)
	for series, v := range m {
		n, labels, _ := strings.Cut(series, "{")
		if n != name+"_bucket" || !containsAll(labels, labelSubstrings) {
			continue
		}
		_, rest, ok := strings.Cut(labels, `le="`)
		if !ok {
			continue
		}
		leStr, _, _ := strings.Cut(rest, `"`)
		le, err := strconv.ParseFloat(leStr, 64)
		if err != nil {
			continue
		}
		byLE[le] += v
	}
	var h histogram
	for le := range byLE {
		h.les = append(h.les, le)
	}
	slices.Sort(h.les)
	for _, le := range h.les {
		h.counts = append(h.counts, byLE[le])
	}
	h.sum = m.sum(name+"_sum", labelSubstrings...)
	h.count = m.sum(name+"_count", labelSubstrings...)
	return h
}

// minus is h's observations since an earlier scrape.
func (h histogram) minus(before histogram) histogram {
	out := histogram{les: h.les, counts: slices.Clone(h.counts), sum: h.sum - before.sum, count: h.count - before.count}
	for i, le := range h.les {
		if j := slices.Index(before.les, le); j >= 0 {
			out.counts[i] -= before.counts[j]
		}
	}
	return out
}

// quantile estimates the q-quantile (0..1) by linear interpolation inside
// the bucket, as Prometheus's histogram_quantile does; -1 when empty.
func (h histogram) quantile(q float64) float64 {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return -1
	}
	rank := q * h.counts[len(h.counts)-1]
	lower, prev := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			if math.IsInf(h.les[i], 1) {
				return lower // above the highest finite bound
			}
			if c == prev {
				return h.les[i]
			}
			return lower + (h.les[i]-lower)*(rank-prev)/(c-prev)
		}
		lower, prev = h.les[i], c
	}
	return lower
}

// mean is the average observation; -1 when empty.
func (h histogram) mean() float64 {
	if h.count <= 0 {
		return -1
	}
	return h.sum / h.count
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// fleetOpSummary is the answer of POST /fleet/operation and the operation
// in GET /fleet/operation/detail.
type fleetOpSummary struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	ElapsedMs int64  `json:"elapsedMs"`
	Total     int    `json:"total"`
	Done      int    `json:"done"`
	OK        int    `json:"ok"`
	Failed    int    `json:"failed"`
	Offline   int    `json:"offline"`
}

type fleetOpResult struct {
	ServerID string `json:"serverId"`
	Status   string `json:"status"`
	Reason   string `json:"reason"`
}

// fleetOp runs one fleet-wide operation on all servers and polls until it
// ends; it returns the final summary and up to 3 failed results.
func (a *apiClient) fleetOp(ctx context.Context, kind string, concurrency int, timeout time.Duration) (fleetOpSummary, []fleetOpResult, error) {
	var op fleetOpSummary
	body := map[string]any{"kind": kind, "all": true, "concurrency": concurrency, "timeoutMs": timeout.Milliseconds()}
	if err := a.call(ctx, http.MethodPost, "/fleet/operation", body, &op); err != nil {
		return op, nil, err
	}
	var detail struct {
		Operation fleetOpSummary `json:"operation"`
		Results   struct {
			List []fleetOpResult `json:"list"`
		} `json:"results"`
	}
	for {
		q := url.Values{"id": {op.ID}, "status": {"failed"}, "pageSize": {"3"}}
		if err := a.call(ctx, http.MethodGet, "/fleet/operation/detail?"+q.Encode(), nil, &detail); err != nil {
			return op, nil, err
		}
		if detail.Operation.State == "done" {
			return detail.Operation, detail.Results.List, nil
		}
		select {
		case <-ctx.Done():
			return detail.Operation, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
