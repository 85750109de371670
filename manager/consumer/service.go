package consumer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/paging"
)

// Limits on what a consumer may say.
const (
	MaxAppIDLen      = 64
	MaxNameLen       = 128
	MaxOrgIDLen      = 64
	MaxOrgNameLen    = 128
	MaxOwnerNameLen  = 64
	MaxOwnerEmailLen = 128
	// MaxTTL bounds a token's lifetime when one is given.
	MaxTTL = 10 * 365 * 24 * time.Hour
	// TokenLen is the length of a token: hex of 20 random bytes, the shape
	// of Apollo's tokens.
	TokenLen = 40
)

var (
	appIDRe = regexp.MustCompile(`^[0-9A-Za-z_.-]+$`)
	tokenRe = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

// Scopes checks that a grant's scope names things that exist and returns
// it in the form grants keep: the Apollo adapter implements it with its
// mapping of apps, clusters and namespaces onto ADMQ clusters, layers and
// config files. It returns the domain error of what is missing (an
// unknown cluster, layer or file). Empty names (all of them) stay empty.
type Scopes interface {
	CanonicalScope(ctx context.Context, appID, clusterName, namespaceName string) (cluster, namespace string, err error)
}

// Service creates, lists and revokes consumers, checks their tokens and
// keeps their grants.
type Service struct {
	store  Store
	scopes Scopes
	ids    *ids.Generator
	now    func() time.Time
}

// NewService returns a Service.
func NewService(store Store, scopes Scopes, gen *ids.Generator, now func() time.Time) *Service {
	return &Service{store: store, scopes: scopes, ids: gen, now: now}
}

// Spec is what an admin gives to create a consumer.
type Spec struct {
	AppID, Name, OrgID, OrgName, OwnerName, OwnerEmail string
	// TTL: zero never expires.
	TTL       time.Duration
	CreatedBy string
}

// Issued is a new consumer with its token, shown once.
type Issued struct {
	Consumer
	Token string
}

// Create validates spec and stores a new consumer with a new token.
func (s *Service) Create(ctx context.Context, spec Spec) (Issued, error) {
	if err := spec.validate(); err != nil {
		return Issued{}, err
	}
	token, err := newToken()
	if err != nil {
		return Issued{}, err
	}
	now := s.now()
	c := Consumer{
		ID: s.ids.Next(), AppID: spec.AppID, Name: spec.Name, OrgID: spec.OrgID, OrgName: spec.OrgName,
		OwnerName: spec.OwnerName, OwnerEmail: spec.OwnerEmail, TokenHash: hashToken(token),
		CreatedBy: spec.CreatedBy, CreatedAt: now,
	}
	if spec.TTL > 0 {
		c.ExpiresAt = now.Add(spec.TTL)
	}
	if err := s.store.CreateConsumer(ctx, &c); err != nil {
		return Issued{}, fmt.Errorf("create third-party app %s: %w", spec.AppID, err)
	}
	return Issued{Consumer: c, Token: token}, nil
}

func (spec Spec) validate() error {
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"appId", spec.AppID, MaxAppIDLen},
		{"name", spec.Name, MaxNameLen},
		{"orgId", spec.OrgID, MaxOrgIDLen},
		{"orgName", spec.OrgName, MaxOrgNameLen},
		{"ownerName", spec.OwnerName, MaxOwnerNameLen},
		{"ownerEmail", spec.OwnerEmail, MaxOwnerEmailLen},
	} {
		if err := invalid.Text(f.name, f.v, 1, f.max); err != nil {
			return err
		}
	}
	// "." and ".." match the pattern, but no URL can name them: a client
	// resolves them away from /apps/{appId}.
	if !appIDRe.MatchString(spec.AppID) || spec.AppID == "." || spec.AppID == ".." {
		return invalid.Field("appId", "may hold only letters, digits, '_', '.' and '-', and not be . or ..")
	}
	if !appIDRe.MatchString(spec.OrgID) || spec.OrgID == "." || spec.OrgID == ".." {
		return invalid.Field("orgId", "may hold only letters, digits, '_', '.' and '-', and not be . or ..")
	}
	if a, err := mail.ParseAddress(spec.OwnerEmail); err != nil || a.Address != spec.OwnerEmail {
		return invalid.Field("ownerEmail", "is not an e-mail address")
	}
	if spec.TTL < 0 || spec.TTL > MaxTTL {
		return invalid.Field("ttlSeconds", "must be 0 (never expires) to %d", int64(MaxTTL/time.Second))
	}
	return nil
}

// Consumers lists consumers, newest first.
func (s *Service) Consumers(ctx context.Context, p paging.Page) ([]Consumer, int, error) {
	return s.store.Consumers(ctx, p)
}

// Consumer returns one consumer.
func (s *Service) Consumer(ctx context.Context, id ids.ID) (Consumer, error) {
	return s.store.Consumer(ctx, id)
}

// Revoke ends a consumer's token at once; its grants are kept for the
// record but no longer usable.
func (s *Service) Revoke(ctx context.Context, id ids.ID) error {
	return s.store.RevokeConsumer(ctx, id, s.now())
}

// Authenticate returns the consumer whose token this is, with its grants,
// if it is active; otherwise ErrTokenRefused.
func (s *Service) Authenticate(ctx context.Context, token string) (Consumer, []Grant, error) {
	if !tokenRe.MatchString(token) {
		return Consumer{}, nil, ErrTokenRefused
	}
	c, err := s.store.ConsumerByTokenHash(ctx, hashToken(token))
	if errors.Is(err, ErrNotFound) {
		return Consumer{}, nil, ErrTokenRefused
	}
	if err != nil {
		return Consumer{}, nil, fmt.Errorf("authenticate consumer: %w", err)
	}
	if c.Status(s.now()) != "active" {
		return Consumer{}, nil, ErrTokenRefused
	}
	grants, err := s.store.Grants(ctx, c.ID)
	if err != nil {
		return Consumer{}, nil, fmt.Errorf("authenticate consumer: %w", err)
	}
	return c, grants, nil
}

// GrantSpec is what an admin gives to grant a consumer part of an app.
type GrantSpec struct {
	ConsumerID                        ids.ID
	AppID, NamespaceName, ClusterName string
	Modify, Release                   bool
	CreatedBy                         string
}

// Grant validates spec against what exists and stores the grant.
func (s *Service) Grant(ctx context.Context, spec GrantSpec) (Grant, error) {
	if spec.ConsumerID.IsZero() {
		return Grant{}, invalid.Field("consumerId", "is required")
	}
	if spec.AppID == "" {
		return Grant{}, invalid.Field("appId", "is required")
	}
	c, err := s.store.Consumer(ctx, spec.ConsumerID)
	if err != nil {
		return Grant{}, fmt.Errorf("grant to %s: %w", spec.ConsumerID, err)
	}
	if !c.RevokedAt.IsZero() {
		return Grant{}, fmt.Errorf("grant to %s: %w", c.AppID, ErrConsumerRevoked)
	}
	cl, ns, err := s.scopes.CanonicalScope(ctx, spec.AppID, spec.ClusterName, spec.NamespaceName)
	if err != nil {
		return Grant{}, err
	}
	g := Grant{
		ID: s.ids.Next(), ConsumerID: spec.ConsumerID, AppID: spec.AppID, NamespaceName: ns,
		ClusterName: cl, Modify: spec.Modify, Release: spec.Release,
		CreatedBy: spec.CreatedBy, CreatedAt: s.now(),
	}
	if err := s.store.CreateGrant(ctx, &g); err != nil {
		return Grant{}, fmt.Errorf("grant to %s: %w", c.AppID, err)
	}
	return g, nil
}

// Grants lists a consumer's grants (ErrNotFound for an unknown consumer).
func (s *Service) Grants(ctx context.Context, consumerID ids.ID) ([]Grant, error) {
	if _, err := s.store.Consumer(ctx, consumerID); err != nil {
		return nil, err
	}
	return s.store.Grants(ctx, consumerID)
}

// DeleteGrant removes one grant; it stops applying at once.
func (s *Service) DeleteGrant(ctx context.Context, id ids.ID) error {
	return s.store.DeleteGrant(ctx, id)
}

func newToken() (string, error) {
	b := make([]byte, TokenLen/2)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
