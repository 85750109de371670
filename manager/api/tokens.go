package api

import (
	"net"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/enroll"
)

type tokenRequest struct {
	Description string `json:"description"`
	AreaID      ids.ID `json:"areaId"`
	// MaxUses: 1 (the default) makes a single-use token; 0 is unlimited.
	MaxUses *int `json:"maxUses"`
	// TTLSeconds: default 86400; 0 never expires.
	TTLSeconds *int64 `json:"ttlSeconds"`
}

func (a *API) createToken(c echo.Context) error {
	var r tokenRequest
	if c.Request().ContentLength != 0 {
		if err := decode(c, &r); err != nil {
			return err
		}
	}
	spec := enroll.TokenSpec{Description: r.Description, AreaID: r.AreaID, MaxUses: 1, CreatedBy: userOf(c).Username}
	if r.MaxUses != nil {
		spec.MaxUses = *r.MaxUses
	}
	if r.TTLSeconds != nil {
		switch ttl := *r.TTLSeconds; {
		case ttl < 0 || ttl > int64(enroll.MaxTokenTTL/time.Second):
			return invalid.Field("ttlSeconds", "must be 0 (never expires) to %d", int64(enroll.MaxTokenTTL/time.Second))
		case ttl == 0:
			spec.TTL = -1
		default:
			spec.TTL = time.Duration(ttl) * time.Second
		}
	}
	t, err := a.d.Enroll.CreateToken(c.Request().Context(), spec)
	if err != nil {
		return err
	}
	detail(c, "token=%s maxUses=%d", t.ID, t.MaxUses)
	host := c.Request().Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		host = "MANAGER-HOST"
	}
	manager := net.JoinHostPort(host, strconv.Itoa(a.d.TunnelPort))
	return ok(c, createdTokenView{
		tokenView:   toTokenView(t.JoinToken, a.d.Now()),
		Token:       t.JoinString,
		CACertHash:  t.CAPin,
		JoinCommand: "admq-agent install --manager " + manager + " --token " + t.JoinString,
	})
}

func (a *API) listTokens(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Enroll.Tokens(c.Request().Context(), p)
	if err != nil {
		return err
	}
	now := a.d.Now()
	views := make([]tokenView, len(list))
	for i, t := range list {
		views[i] = toTokenView(t, now)
	}
	return ok(c, newPage(p, total, views))
}

type tokenIDRequest struct {
	ID string `json:"id"`
}

func (a *API) revokeToken(c echo.Context) error {
	id := c.QueryParam("id")
	if c.Request().ContentLength != 0 {
		var r tokenIDRequest
		if err := decode(c, &r); err != nil {
			return err
		}
		if id != "" && r.ID != "" && id != r.ID {
			return invalid.Field("id", "the body says %q and the query says %q", r.ID, id)
		}
		if id == "" {
			id = r.ID
		}
	}
	if id == "" {
		return invalid.Field("id", "is required (in the JSON body or as ?id=)")
	}
	detail(c, "token=%s", truncate(id, 16))
	if err := a.d.Enroll.Revoke(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}
