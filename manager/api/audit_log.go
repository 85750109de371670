package api

import (
	"github.com/labstack/echo/v4"
)

func (a *API) listAudit(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Audit.Audit(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]auditView, len(list))
	for i, e := range list {
		views[i] = toAuditView(e)
	}
	return ok(c, newPage(p, total, views))
}
