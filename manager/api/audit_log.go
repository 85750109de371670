package api

import (
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/audit"
)

var auditQuery = []queryParam{
	{"username", "string", "only this user's calls"},
	{"method", "string", "only calls with this HTTP method (POST, PUT, DELETE)"},
	{"path", "string", "only calls whose path contains this"},
	{"from", "string", "only calls at or after this time, yyyy-MM-dd HH:mm:ss in the manager's time zone (GET /health says which)"},
	{"to", "string", "only calls at or before this time, same format"},
}

func (a *API) listAudit(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	f := audit.Filter{Username: c.QueryParam("username"), Method: strings.ToUpper(c.QueryParam("method")), Path: c.QueryParam("path")}
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := c.QueryParam(q.name); v != "" {
			t, err := time.ParseInLocation(timeLayout, v, a.d.Now().Location())
			if err != nil {
				return invalid.Field(q.name, "must be a time as yyyy-MM-dd HH:mm:ss")
			}
			*q.dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return invalid.Field("to", "is before from")
	}
	list, total, err := a.d.Audit.Audit(c.Request().Context(), f, p)
	if err != nil {
		return err
	}
	views := make([]auditView, len(list))
	for i, e := range list {
		views[i] = toAuditView(e)
	}
	return ok(c, newPage(p, total, views))
}
