// Package httpaudit observes the requests of the manager's HTTP APIs — the
// console API and the Apollo-compatible Open API — in one echo middleware,
// so that both do it alike: every request timed by route, method and
// status; a handler's error answered in the API's own form; every call that
// may change something written to the audit log, even when the client went
// away; and a handler's panic logged and answered as an error.
package httpaudit

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/audit"
)

// MaxDetail caps an audit entry's detail, in bytes.
const MaxDetail = 512

// Config is what a Recorder needs of the API it observes.
type Config struct {
	// Subsystem and Help name and describe the API's histogram of request
	// durations, admq_<Subsystem>_request_duration_seconds, which goes to
	// Registerer.
	Subsystem  string
	Help       string
	Registerer prometheus.Registerer
	Audit      audit.Store
	IDs        *ids.Generator
	Now        func() time.Time
	Log        *slog.Logger
	// Settle answers a handler's error in the API's own error form.
	Settle func(err error, c echo.Context)
	// Caller fills in the audit entry of a call what only the API knows:
	// who made it, its code, its detail (cut to MaxDetail bytes after).
	Caller func(c echo.Context, e *audit.Entry)
}

// Recorder times, settles and audits one API's requests.
type Recorder struct {
	cfg      Config
	duration *prometheus.HistogramVec
}

// New returns a Recorder, its histogram registered.
func New(cfg Config) *Recorder {
	r := &Recorder{cfg: cfg, duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "admq", Subsystem: cfg.Subsystem, Name: "request_duration_seconds",
		Help: cfg.Help, Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "status"})}
	cfg.Registerer.MustRegister(r.duration)
	return r
}

// Middleware times every request, settles a handler's error, and audits
// every call to a route that may change something (not GET, HEAD or
// OPTIONS).
func (r *Recorder) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := r.cfg.Now()
		if err := next(c); err != nil {
			r.cfg.Settle(err, c)
		}
		status := c.Response().Status
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		r.duration.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Observe(r.cfg.Now().Sub(start).Seconds())
		if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions && route != "unmatched" {
			r.audit(c, status)
		}
		return nil
	}
}

func (r *Recorder) audit(c echo.Context, status int) {
	e := audit.Entry{
		ID:       r.cfg.IDs.Next(),
		At:       r.cfg.Now(),
		Method:   c.Request().Method,
		Path:     c.Request().URL.Path,
		RemoteIP: c.RealIP(),
		Status:   status,
	}
	r.cfg.Caller(c, &e)
	if len(e.Detail) > MaxDetail {
		e.Detail = e.Detail[:MaxDetail]
	}
	// The audit row must be written even if the client went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 5*time.Second)
	defer cancel()
	if err := r.cfg.Audit.AppendAudit(ctx, &e); err != nil {
		r.cfg.Log.Error("write audit log", "method", e.Method, "path", e.Path, "err", err)
	}
}

// Recover turns a handler's panic into the error failed returns, logging
// it with msg; http.ErrAbortHandler goes on up, as net/http expects.
func Recover(log *slog.Logger, msg string, failed func() error) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					log.Error(msg, "path", c.Request().URL.Path, "panic", p)
					err = failed()
				}
			}()
			return next(c)
		}
	}
}
