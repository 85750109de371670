// Package api serves the ADMQ console's REST API under /admq-manager: the
// response envelope, login and roles, paging, auditing of every change, and
// an OpenAPI document generated from the same route table that serves it.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/audit"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetop"
	"github.com/admq/admq-manager/manager/httpaudit"
	"github.com/admq/admq-manager/manager/pkg"
)

// Prefix is the context path of the console API.
const Prefix = "/admq-manager"

// FleetMetricsPath serves, without login like /metrics, the host metrics
// of every server whose agent reports them (admq_node_*), labelled by
// server id, manager_ip, hostname and area: point Prometheus here to watch
// servers it cannot reach.
const FleetMetricsPath = "/metrics/fleet"

// Context keys.
const (
	ctxUser   = "admq.user"
	ctxCode   = "admq.code"
	ctxDetail = "admq.detail"
)

// Deps are what the API serves.
type Deps struct {
	Auth   *auth.Service
	Fleet  *fleet.Service
	Enroll *enroll.Service
	Audit  audit.Store
	IDs    *ids.Generator
	Now    func() time.Time
	Log    *slog.Logger
	// Registerer receives the HTTP metrics; Gatherer is served at /metrics.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// BodyLimit caps request bodies (default 1 MiB), except uploads, which
	// are capped by the service they go to.
	BodyLimit int64
	// TunnelPort is the port agents dial, for the join command we print.
	TunnelPort int
	// AgentsConnected reports live sessions for the health route.
	AgentsConnected func() int
	// Packages keeps software packages; its MaxSize caps uploads.
	Packages *pkg.Service
	// Clusters keeps clusters and their nodes.
	Clusters *cluster.Service
	// Config keeps the nodes' config files, items and releases.
	Config *config.Service
	// Exporters says which servers' agents report host metrics, for a
	// server's serverExporterStatus.
	Exporters Exporters
	// FleetScrape serves /metrics/fleet: the host metrics of every server,
	// kept apart from /metrics so that the manager's own stay small
	// (fleetmetrics.Store.Handler).
	FleetScrape http.Handler
	// Consumers keeps the third-party apps of the Apollo-compatible Open
	// API and their grants.
	Consumers *consumer.Service
	// OpenAPIv1 serves the Apollo-compatible Open API under /openapi/ on
	// the same port; nil: those paths are unknown routes.
	OpenAPIv1 http.Handler
	// Deploy runs deployment jobs, node commands and logs, and reports
	// nodes' live run states; nil: those routes answer code 1.
	Deploy Deployer
	// Console, when set, answers GET and HEAD outside the API's prefix and
	// the metrics paths: the web console (manager/console).
	Console http.Handler
	// FleetMetrics gives the latest host metrics of every reporting
	// server, for /server/metrics; nil: an empty fleet.
	FleetMetrics FleetMetrics
	// FleetOps runs operations on many servers or nodes at once; nil: its
	// routes answer code 1.
	FleetOps *fleetop.Service
}

// Exporters tells whether a server's metrics collector, its agent, is
// reporting; fleetmetrics.Store implements it.
type Exporters interface {
	Reporting(id ids.ID) bool
}

// API is the console's HTTP handler.
type API struct {
	d      Deps
	echo   *echo.Echo
	routes []route
	logins *loginThrottle
	// streamed are the "METHOD /path" of routes that stream their body
	// and limit it themselves.
	streamed map[string]bool
	// stopping is closed when Serve begins to shut down: long-lived
	// responses (job event streams) end then instead of holding the
	// shutdown for its whole grace.
	stopping     chan struct{}
	stoppingOnce sync.Once

	// checks holds a slot per password being checked.
	checks chan struct{}
	// lists are the encoded entries the server and config item lists
	// reuse.
	lists listCaches

	docOnce sync.Once
	doc     *openapi3.T
	docErr  error
	// docJSON is the document as served, encoded once: kin-openapi's
	// encoder makes tens of MB of garbage per encoding.
	docJSON func() ([]byte, error)
}

// New builds the handler.
func New(d Deps) *API {
	if d.BodyLimit <= 0 {
		d.BodyLimit = 1 << 20
	}
	a := &API{d: d, echo: echo.New(), streamed: map[string]bool{}, stopping: make(chan struct{}), lists: newListCaches()}
	a.docJSON = sync.OnceValues(a.encodeOpenAPI)
	// Five failed logins in a row per address and ten per username, then
	// one more every 12 s.
	a.logins = newLoginThrottle(12*time.Second, 5, 10, d.Now)
	a.checks = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	observe := httpaudit.New(httpaudit.Config{
		Subsystem: "http", Help: "Console API request durations by route, method and HTTP status.", Registerer: d.Registerer,
		Audit: d.Audit, IDs: d.IDs, Now: d.Now, Log: d.Log, Settle: a.handleError, Caller: caller,
	})

	e := a.echo
	e.HideBanner, e.HidePort = true, true
	// The client's address is the TCP peer's: X-Forwarded-For is not
	// trusted, or anyone could dodge the login throttle and forge the
	// audit log's addresses.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = func(err error, c echo.Context) { a.handleError(err, c) }
	e.Use(observe.Middleware, httpaudit.Recover(d.Log, "handler panic", func() error {
		return newError(codeError, "internal error; see the manager log")
	}), a.limitBody)
	a.routes = a.routeTable()
	for _, r := range a.routes {
		h := r.handler
		if r.role != "" {
			h = a.authenticate(r.role)(h)
		}
		if r.multipart {
			a.streamed[r.method+" "+Prefix+r.path] = true
		}
		e.Add(r.method, Prefix+r.path, h)
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})))
	if d.FleetScrape != nil {
		e.GET(FleetMetricsPath, echo.WrapHandler(d.FleetScrape))
	}
	if d.Console != nil {
		e.GET("/*", a.console)
		e.HEAD("/*", a.console)
	}
	return a
}

// OpenAPIv1Prefix is where the Apollo-compatible Open API is served.
const OpenAPIv1Prefix = "/openapi/"

// ServeHTTP implements http.Handler: the Apollo-compatible Open API under
// /openapi/, the console everywhere else.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.d.OpenAPIv1 != nil && strings.HasPrefix(r.URL.Path, OpenAPIv1Prefix) {
		a.d.OpenAPIv1.ServeHTTP(w, r)
		return
	}
	a.echo.ServeHTTP(w, r)
}

// console serves the web console for every GET outside the API: a path
// under the API's prefix or /metrics that no route matched is still the
// API's JSON "no such route", never the console's page.
func (a *API) console(c echo.Context) error {
	p := c.Request().URL.Path
	for _, reserved := range []string{Prefix, "/metrics", strings.TrimSuffix(OpenAPIv1Prefix, "/")} {
		if p == reserved || strings.HasPrefix(p, reserved+"/") {
			return echo.ErrNotFound
		}
	}
	a.d.Console.ServeHTTP(c.Response(), c.Request())
	return nil
}

// Serve serves the API on ln until ctx is done, then drains for up to grace.
// Event streams end at once, without their "done" event.
func (a *API) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // uploads come later; headers are bounded above
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.d.Log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { a.stoppingOnce.Do(func() { close(a.stopping) }) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *API) handleError(err error, c echo.Context) {
	ae, internal := classify(err)
	if internal {
		a.d.Log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if werr := writeError(c, ae); werr != nil {
		a.d.Log.Warn("write error response", "err", werr)
	}
	if ae.code != codeError {
		c.Set(ctxDetail, ae.message)
	}
}

// caller tells the audit log who made a console call, its envelope code
// and its detail.
func caller(c echo.Context, e *audit.Entry) {
	if u, ok := c.Get(ctxUser).(auth.User); ok {
		e.Username, e.Role = u.Username, string(u.Role)
	}
	if code, ok := c.Get(ctxCode).(int); ok {
		e.Code = code
	}
	if d, ok := c.Get(ctxDetail).(string); ok {
		e.Detail = d
	}
}

func (a *API) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if a.streamed[req.Method+" "+c.Path()] {
			return next(c)
		}
		if req.ContentLength > a.d.BodyLimit {
			return newError(codeRequestTooLarge, "request body larger than %d bytes", a.d.BodyLimit)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, a.d.BodyLimit)
		return next(c)
	}
}

// authenticate requires a valid bearer token of a user whose role allows min.
func (a *API) authenticate(min auth.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			scheme, token, found := strings.Cut(strings.TrimSpace(h), " ")
			if h == "" {
				return newError(codeTokenInvalid, "not logged in: send Authorization: Bearer <token> from POST %s/login", Prefix)
			}
			if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
				return newError(codeTokenInvalid, "Authorization header must be 'Bearer <token>'")
			}
			u, err := a.d.Auth.Authenticate(c.Request().Context(), strings.TrimSpace(token))
			if err != nil {
				if errors.Is(err, auth.ErrTokenInvalid) {
					return newError(codeTokenInvalid, "token is expired or not valid; log in again")
				}
				return err
			}
			c.Set(ctxUser, u)
			if !u.Role.Allows(min) {
				return newError(codePermissionDeny, "role %s may not do this; it needs %s", u.Role, min)
			}
			return next(c)
		}
	}
}

func userOf(c echo.Context) auth.User {
	u, _ := c.Get(ctxUser).(auth.User)
	return u
}

func detail(c echo.Context, format string, args ...any) {
	c.Set(ctxDetail, sprintf(format, args...))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
