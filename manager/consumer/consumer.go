// Package consumer owns third-party applications ("consumers" in Apollo's
// words): the programs that call the Apollo-compatible configuration Open
// API with a token, and the grants that say which ADMQ clusters (Apollo
// apps), layers (Apollo clusters) and config files (Apollo namespaces) each
// may read, modify or release.
//
// A token is shown once when its consumer is created; only its SHA-256 is
// stored. Revoking a consumer ends its token at once. Reads are scoped like
// writes: a consumer sees only what a grant names.
package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
)

// Errors callers branch on.
var (
	// ErrTokenRefused covers missing, unknown, revoked and expired tokens
	// alike, so that a caller learns nothing about which tokens exist.
	ErrTokenRefused    = errors.New("consumer token refused")
	ErrNotFound        = errors.New("third-party app does not exist")
	ErrAppIDExists     = errors.New("a third-party app with this appId already exists")
	ErrGrantNotFound   = errors.New("grant does not exist")
	ErrGrantExists     = errors.New("the third-party app already has a grant on this scope")
	ErrConsumerRevoked = errors.New("the third-party app is revoked")
)

// Consumer is a third-party application allowed to call the Open API.
type Consumer struct {
	ID ids.ID
	// AppID is the third-party application's own id (not an ADMQ cluster).
	AppID      string
	Name       string
	OrgID      string
	OrgName    string
	OwnerName  string
	OwnerEmail string
	// TokenHash is the SHA-256 of the token; the token itself is not kept.
	TokenHash []byte
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
	CreatedBy string
	CreatedAt time.Time
}

// Status is "active", "expired" or "revoked" at now.
func (c Consumer) Status(now time.Time) string {
	switch {
	case !c.RevokedAt.IsZero():
		return "revoked"
	case !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt):
		return "expired"
	}
	return "active"
}

// Grant lets a consumer use part of one ADMQ cluster (an Apollo app).
type Grant struct {
	ID         ids.ID
	ConsumerID ids.ID
	// AppID is the ADMQ cluster's name.
	AppID string
	// NamespaceName is one config file (Apollo namespace); empty: every
	// namespace of the app, present and future.
	NamespaceName string
	// ClusterName is "default" (the cluster-wide layer) or a node's name;
	// empty: every cluster of the app.
	ClusterName string
	// Modify allows editing items; Release allows publishing, rolling back
	// and gray releases. A grant with neither allows reading only.
	Modify    bool
	Release   bool
	CreatedBy string
	CreatedAt time.Time
}

// Covers reports whether g applies to the namespace ns of cluster cl of app.
func (g Grant) Covers(app, cl, ns string) bool {
	return g.AppID == app && (g.ClusterName == "" || g.ClusterName == cl) && (g.NamespaceName == "" || g.NamespaceName == ns)
}

// Store is what consumer needs from persistence.
type Store interface {
	// CreateConsumer inserts c; an unrevoked consumer with the same AppID
	// is ErrAppIDExists.
	CreateConsumer(ctx context.Context, c *Consumer) error
	Consumer(ctx context.Context, id ids.ID) (Consumer, error)
	// ConsumerByTokenHash returns the consumer whose token hashes to h,
	// whatever its state, or ErrNotFound.
	ConsumerByTokenHash(ctx context.Context, h []byte) (Consumer, error)
	// Consumers returns one page of consumers, newest first, and the total.
	Consumers(ctx context.Context, p paging.Page) ([]Consumer, int, error)
	// RevokeConsumer marks the consumer revoked at now (keeping the first
	// time), or returns ErrNotFound.
	RevokeConsumer(ctx context.Context, id ids.ID, now time.Time) error
	// CreateGrant inserts g: ErrNotFound for an unknown consumer,
	// ErrGrantExists when the consumer has a grant on the same scope.
	CreateGrant(ctx context.Context, g *Grant) error
	// Grants returns every grant of the consumer, oldest first.
	Grants(ctx context.Context, consumerID ids.ID) ([]Grant, error)
	// DeleteGrant removes one grant, or returns ErrGrantNotFound.
	DeleteGrant(ctx context.Context, id ids.ID) error
}
