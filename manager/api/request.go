package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/paging"
)

// decode reads a JSON body into dst. Unknown fields are refused so that a
// misspelt field is an error, not a silent no-op.
func decode(c echo.Context, dst any) error {
	req := c.Request()
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return invalid.Field("Content-Type", "must be application/json, got %q", ct)
		}
	}
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return invalid.Field("", "request body is required (JSON)")
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return invalid.Field(strings.Trim(f, `"`), "unknown field")
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid.Field("", "request body must hold exactly one JSON value")
	}
	return nil
}

// pageOf reads pageNum and pageSize (defaults 1 and 10).
func pageOf(c echo.Context) (paging.Page, error) {
	p := paging.Page{Num: paging.DefaultNum, Size: paging.DefaultSize}
	var err error
	if p.Num, err = intParam(c, "pageNum", paging.DefaultNum, 1, 1_000_000); err != nil {
		return p, err
	}
	if p.Size, err = intParam(c, "pageSize", paging.DefaultSize, 1, paging.MaxSize); err != nil {
		return p, err
	}
	return p, nil
}

func intParam(c echo.Context, name string, def, min, max int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, invalid.Field(name, "must be a whole number from %d to %d", min, max)
	}
	return n, nil
}

// idRequest is the body of the seed's DELETE calls.
type idRequest struct {
	ID ids.ID `json:"id"`
}

// idOf takes the id from ?id= or from a {"id": "..."} body, as the seed's
// DELETE calls send it. Both may be given if they agree.
func idOf(c echo.Context) (ids.ID, error) {
	var q ids.ID
	if s := c.QueryParam("id"); s != "" {
		var err error
		if q, err = ids.Parse(s); err != nil {
			return 0, invalid.Field("id", "%v", err)
		}
	}
	var b idRequest
	if c.Request().ContentLength != 0 {
		if err := decode(c, &b); err != nil {
			if e, ok := invalid.As(err); ok && e.Reason == "request body is required (JSON)" {
				b = idRequest{}
			} else {
				return 0, err
			}
		}
	}
	switch {
	case q.IsZero() && b.ID.IsZero():
		return 0, invalid.Field("id", "is required (in the JSON body or as ?id=)")
	case !q.IsZero() && !b.ID.IsZero() && q != b.ID:
		return 0, invalid.Field("id", "the body says %s and the query says %s", b.ID, q)
	case q.IsZero():
		return b.ID, nil
	}
	return q, nil
}

// queryID reads an optional id query parameter.
func queryID(c echo.Context, name string) (ids.ID, error) {
	s := c.QueryParam(name)
	if s == "" {
		return 0, nil
	}
	id, err := ids.Parse(s)
	if err != nil {
		return 0, invalid.Field(name, "%v", err)
	}
	return id, nil
}
