package api

import (
	"github.com/labstack/echo/v4"
)

type areaRequest struct {
	Code string `json:"code"`
	Area string `json:"area"`
}

func (a *API) createArea(c echo.Context) error {
	var r areaRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "code=%q", truncate(r.Code, 64))
	area, err := a.d.Fleet.CreateArea(c.Request().Context(), r.Code, r.Area)
	if err != nil {
		return err
	}
	return ok(c, toAreaView(area))
}

func (a *API) listAreas(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Fleet.Areas(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]areaView, len(list))
	for i, ar := range list {
		views[i] = toAreaView(ar)
	}
	return ok(c, newPage(p, total, views))
}

func (a *API) deleteArea(c echo.Context) error {
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "area=%s", id)
	if err := a.d.Fleet.DeleteArea(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}

// serverRequest has the seed's fields for adding a server.
