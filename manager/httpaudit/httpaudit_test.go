package httpaudit_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/audit"
	"github.com/admq/admq-manager/manager/httpaudit"
	"github.com/admq/admq-manager/manager/paging"
)

type entries struct {
	mu   sync.Mutex
	list []audit.Entry
}

func (s *entries) AppendAudit(_ context.Context, e *audit.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, *e)
	return nil
}

func (s *entries) Audit(context.Context, audit.Filter, paging.Page) ([]audit.Entry, int, error) {
	return nil, 0, nil
}

func TestMiddleware(t *testing.T) {
	store := &entries{}
	reg := prometheus.NewRegistry()
	gen, _ := ids.NewGenerator(1)
	var settled []string
	r := httpaudit.New(httpaudit.Config{
		Subsystem: "test", Help: "test", Registerer: reg, Audit: store, IDs: gen, Now: time.Now,
		Log: slog.New(slog.DiscardHandler),
		Settle: func(err error, c echo.Context) {
			settled = append(settled, err.Error())
			_ = c.String(http.StatusTeapot, err.Error())
		},
		Caller: func(c echo.Context, e *audit.Entry) { e.Username, e.Detail = "alice", strings.Repeat("d", 600) },
	})
	e := echo.New()
	e.Use(r.Middleware, httpaudit.Recover(slog.New(slog.DiscardHandler), "panic", func() error { return errors.New("panicked") }))
	e.GET("/read", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.POST("/change", func(c echo.Context) error { return errors.New("refused") })
	e.POST("/panic", func(c echo.Context) error { panic("boom") })
	for _, req := range []struct{ method, path string }{{"GET", "/read"}, {"POST", "/change"}, {"POST", "/panic"}, {"POST", "/nowhere"}} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.path, nil))
	}
	if strings.Join(settled, ",") != "refused,panicked,"+echo.ErrNotFound.Error() {
		t.Errorf("settled %q", settled)
	}
	// The read and the unmatched route are timed, not audited.
	if len(store.list) != 2 || store.list[0].Path != "/change" || store.list[0].Status != http.StatusTeapot ||
		store.list[1].Path != "/panic" || store.list[0].Username != "alice" || len(store.list[0].Detail) != httpaudit.MaxDetail {
		t.Errorf("audited %+v", store.list)
	}
	if n := testutil.CollectAndCount(reg, "admq_test_request_duration_seconds"); n != 4 {
		t.Errorf("%d duration series, want 4 (one per route and status)", n)
	}
}
