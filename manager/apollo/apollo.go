// Package apollo serves the Apollo-compatible configuration Open API under
// /openapi/v1, so that Apollo's own clients (the Java ApolloOpenApiClient,
// the .NET client, the bash openapi.sh functions) manage ADMQ configuration
// unchanged.
//
// The mapping: env is this manager's environment name; an appId is an ADMQ
// cluster's name; a clusterName is "default" for the cluster-wide layer of
// the config files, or a node's name (its {nodeDir}, e.g. coordinator-2)
// for that node's overrides; a namespaceName is a config file; items are
// its keys; a release is a flush of a layer. See catalog.go for how a file
// name two components share is told apart.
//
// The wire format is Apollo's: the raw token in Authorization (no
// "Bearer"), a JSON content type accepted on every method, Gson-style JSON
// (Apollo's DTO field names, null fields left out, dates
// yyyy-MM-dd'T'HH:mm:ss.SSSZ, release ids as numbers), every success a 200
// (a void answer has an empty body), and errors as
// {"status","message","timestamp","exception"} with 400, 401, 403, 404,
// 405 or 500. One route table (routes.go) drives the router and the
// OpenAPI document served at /openapi/v1/openapi.json.
package apollo

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/audit"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/httpaudit"
	"github.com/admq/admq-manager/manager/paging"
)

// Prefix is where the Open API is served.
const Prefix = "/openapi/v1"

// Consumers checks tokens; consumer.Service implements it.
type Consumers interface {
	Authenticate(ctx context.Context, token string) (consumer.Consumer, []consumer.Grant, error)
}

// Users tells whether an operator is a console user; the store implements it.
type Users interface {
	UserByName(ctx context.Context, username string) (auth.User, error)
}

// Areas lists the manager's availability areas (the organizations) and
// tells the area of a server (an instance's data center); fleet.Service
// implements it.
type Areas interface {
	Areas(ctx context.Context, p paging.Page) ([]fleet.Area, int, error)
	Area(ctx context.Context, id ids.ID) (fleet.Area, error)
	Server(ctx context.Context, id ids.ID) (fleet.Server, error)
}

// Deps are what the Open API serves.
type Deps struct {
	// Env is this manager's environment name, normalized (NormalizeEnv).
	Env string
	// NamespaceLock switches on Apollo's namespace lock (lock.go); Locks
	// keeps the locks.
	NamespaceLock bool
	Locks         Locks
	Consumers     Consumers
	Users         Users
	// Catalog maps apps, clusters and namespaces onto ADMQ clusters, layers
	// and config files.
	Catalog *Catalog
	// Items reads and edits the items of namespaces.
	Items Items
	// Releases publishes, lists and rolls back releases.
	Releases Releases
	// Areas are the organizations.
	Areas Areas
	Audit audit.Store
	IDs   *ids.Generator
	Now   func() time.Time
	Log   *slog.Logger
	// Registerer receives the request duration metrics.
	Registerer prometheus.Registerer
	// BodyLimit caps request bodies (default 1 MiB).
	BodyLimit int64
}

// Server is the Open API's HTTP handler.
type Server struct {
	d      Deps
	echo   *echo.Echo
	routes []route

	docOnce sync.Once
	doc     *openapi3.T
	docErr  error
}

// New builds the handler.
func New(d Deps) *Server {
	if d.BodyLimit <= 0 {
		d.BodyLimit = 1 << 20
	}
	if d.Env == "" {
		d.Env = DefaultEnv
	}
	s := &Server{d: d, echo: echo.New()}
	observe := httpaudit.New(httpaudit.Config{
		Subsystem: "apollo", Help: "Apollo-compatible Open API request durations by route, method and HTTP status.", Registerer: d.Registerer,
		Audit: d.Audit, IDs: d.IDs, Now: d.Now, Log: d.Log, Settle: s.handleError, Caller: caller,
	})

	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = func(err error, c echo.Context) { s.handleError(err, c) }
	e.Pre(cleanPath)
	e.Use(observe.Middleware, httpaudit.Recover(d.Log, "open api handler panic", func() error { return errors.New("handler panic") }), s.limitBody)
	s.routes = s.routeTable()
	for _, r := range s.routes {
		e.Add(r.method, Prefix+r.path, s.wrap(r))
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// cleanPath makes the router see every path escaped, so that a key or a
// base64 key holding "%2F" stays one path segment (path parameters are
// unescaped by param), and folds doubled slashes: Apollo's Java client
// asks for /openapi/v1//organizations.
func cleanPath(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		raw := u.EscapedPath()
		for strings.Contains(raw, "//") {
			raw = strings.ReplaceAll(raw, "//", "/")
		}
		u.RawPath = raw
		return next(c)
	}
}

// Context keys.
const (
	ctxCall   = "apollo.call"
	ctxDetail = "apollo.detail"
)

func (s *Server) handleError(err error, c echo.Context) {
	ae, internal := classify(err)
	if internal {
		s.d.Log.Error("open api request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	c.Set(ctxDetail, ae.message)
	if c.Response().Committed {
		return
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.status)
		return
	}
	body := errorBody{
		Status:    ae.status,
		Message:   ae.message,
		Timestamp: s.d.Now().Format("2006-01-02T15:04:05.999999999"),
		Exception: exceptionNames[ae.status],
	}
	if werr := writeJSON(c, ae.status, body); werr != nil {
		s.d.Log.Warn("write open api error", "err", werr)
	}
}

// writeJSON answers with v as JSON in Spring's content type.
func writeJSON(c echo.Context, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Blob(status, "application/json;charset=UTF-8", b)
}

// writeEmpty answers 200 with an empty body, as Apollo does for void calls
// and for "nothing there" (the latest release of a namespace never
// released).
func writeEmpty(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderContentLength, "0")
	c.Response().WriteHeader(http.StatusOK)
	return nil
}

// caller tells the audit log which third-party app made an Open API call,
// its operator, and the call's detail.
func caller(c echo.Context, e *audit.Entry) {
	if x, ok := c.Get(ctxCall).(*call); ok && !x.consumer.ID.IsZero() {
		e.Consumer = x.consumer.AppID
		e.Role = "consumer"
		e.Username = x.operator
	}
	if d, ok := c.Get(ctxDetail).(string); ok {
		e.Detail = d
	}
}

func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.d.BodyLimit {
			return badRequest("request body larger than %d bytes", s.d.BodyLimit)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, s.d.BodyLimit)
		return next(c)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
