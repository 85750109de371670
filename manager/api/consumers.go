package api

import (
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/consumer"
)

// Third-party apps of the Apollo-compatible Open API (seed 004, 2.1-2.2).

type consumerRequest struct {
	AppID      string `json:"appId"`
	Name       string `json:"name"`
	OrgID      string `json:"orgId"`
	OrgName    string `json:"orgName"`
	OwnerName  string `json:"ownerName"`
	OwnerEmail string `json:"ownerEmail"`
	// TTLSeconds: 0 or absent, the token never expires.
	TTLSeconds int64 `json:"ttlSeconds"`
}

type consumerView struct {
	ID         ids.ID  `json:"id"`
	AppID      string  `json:"appId"`
	Name       string  `json:"name"`
	OrgID      string  `json:"orgId"`
	OrgName    string  `json:"orgName"`
	OwnerName  string  `json:"ownerName"`
	OwnerEmail string  `json:"ownerEmail"`
	Status     string  `json:"status"` // active, expired or revoked
	ExpireTime apiTime `json:"expireTime"`
	RevokeTime apiTime `json:"revokeTime"`
	CreatedBy  string  `json:"createdBy"`
	CreateTime apiTime `json:"createTime"`
}

func toConsumerView(c consumer.Consumer, now time.Time) consumerView {
	return consumerView{
		ID: c.ID, AppID: c.AppID, Name: c.Name, OrgID: c.OrgID, OrgName: c.OrgName,
		OwnerName: c.OwnerName, OwnerEmail: c.OwnerEmail, Status: c.Status(now),
		ExpireTime: apiTime(c.ExpiresAt), RevokeTime: apiTime(c.RevokedAt),
		CreatedBy: c.CreatedBy, CreateTime: apiTime(c.CreatedAt),
	}
}

// createdConsumerView is shown once: it carries the token.
type createdConsumerView struct {
	consumerView
	// Token goes, as it is, in the Authorization header of Open API calls.
	Token string `json:"token"`
}

func (a *API) createConsumer(c echo.Context) error {
	var r consumerRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.TTLSeconds < 0 || r.TTLSeconds > int64(consumer.MaxTTL/time.Second) {
		return invalid.Field("ttlSeconds", "must be 0 (never expires) to %d", int64(consumer.MaxTTL/time.Second))
	}
	detail(c, "appId=%s", truncate(r.AppID, 64))
	issued, err := a.d.Consumers.Create(c.Request().Context(), consumer.Spec{
		AppID: r.AppID, Name: r.Name, OrgID: r.OrgID, OrgName: r.OrgName, OwnerName: r.OwnerName,
		OwnerEmail: r.OwnerEmail, TTL: time.Duration(r.TTLSeconds) * time.Second, CreatedBy: userOf(c).Username,
	})
	if err != nil {
		return err
	}
	detail(c, "consumer=%s appId=%s", issued.ID, issued.AppID)
	return ok(c, createdConsumerView{consumerView: toConsumerView(issued.Consumer, a.d.Now()), Token: issued.Token})
}

func (a *API) listConsumers(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := a.d.Consumers.Consumers(c.Request().Context(), p)
	if err != nil {
		return err
	}
	now := a.d.Now()
	views := make([]consumerView, len(list))
	for i, cn := range list {
		views[i] = toConsumerView(cn, now)
	}
	return ok(c, newPage(p, total, views))
}

func (a *API) revokeConsumer(c echo.Context) error {
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "consumer=%s", id)
	if err := a.d.Consumers.Revoke(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}

type grantRequest struct {
	ConsumerID    ids.ID `json:"consumerId"`
	AppID         string `json:"appId"`
	NamespaceName string `json:"namespaceName"`
	ClusterName   string `json:"clusterName"`
	Modify        bool   `json:"modify"`
	Release       bool   `json:"release"`
}

type grantView struct {
	ID            ids.ID  `json:"id"`
	ConsumerID    ids.ID  `json:"consumerId"`
	AppID         string  `json:"appId"`
	NamespaceName string  `json:"namespaceName"` // "": every namespace of the app
	ClusterName   string  `json:"clusterName"`   // "": every cluster (default and each node) of the app
	Modify        bool    `json:"modify"`
	Release       bool    `json:"release"`
	CreatedBy     string  `json:"createdBy"`
	CreateTime    apiTime `json:"createTime"`
}

func toGrantView(g consumer.Grant) grantView {
	return grantView{
		ID: g.ID, ConsumerID: g.ConsumerID, AppID: g.AppID, NamespaceName: g.NamespaceName,
		ClusterName: g.ClusterName, Modify: g.Modify, Release: g.Release,
		CreatedBy: g.CreatedBy, CreateTime: apiTime(g.CreatedAt),
	}
}

func (a *API) createGrant(c echo.Context) error {
	var r grantRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "consumer=%s appId=%s cluster=%s namespace=%s modify=%t release=%t",
		r.ConsumerID, truncate(r.AppID, 64), truncate(r.ClusterName, 64), truncate(r.NamespaceName, 64), r.Modify, r.Release)
	g, err := a.d.Consumers.Grant(c.Request().Context(), consumer.GrantSpec{
		ConsumerID: r.ConsumerID, AppID: r.AppID, NamespaceName: r.NamespaceName, ClusterName: r.ClusterName,
		Modify: r.Modify, Release: r.Release, CreatedBy: userOf(c).Username,
	})
	if err != nil {
		return err
	}
	return ok(c, toGrantView(g))
}

func (a *API) listGrants(c echo.Context) error {
	id, err := queryID(c, "consumerId")
	if err != nil {
		return err
	}
	if id.IsZero() {
		return invalid.Field("consumerId", "is required")
	}
	list, err := a.d.Consumers.Grants(c.Request().Context(), id)
	if err != nil {
		return err
	}
	views := make([]grantView, len(list))
	for i, g := range list {
		views[i] = toGrantView(g)
	}
	return ok(c, views)
}

func (a *API) deleteGrant(c echo.Context) error {
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "grant=%s", id)
	if err := a.d.Consumers.DeleteGrant(c.Request().Context(), id); err != nil {
		return err
	}
	return ok(c, nil)
}
