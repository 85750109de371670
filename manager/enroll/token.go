// Package enroll owns join tokens and turns a valid token plus a certificate
// request into an enrolled agent: a server row and a client certificate.
package enroll

import (
	"context"
	"errors"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
)

// Errors callers branch on.
var (
	// ErrTokenRefused covers unknown, wrong-secret, expired, revoked and used-up
	// tokens alike, so that a caller learns nothing about which tokens exist.
	ErrTokenRefused    = errors.New("join token refused")
	ErrTokenNotFound   = errors.New("join token does not exist")
	ErrAlreadyEnrolled = errors.New("a server with this address already has an enrolled agent")
)

// JoinToken lets agents enroll. Its public form is "<ID>.<secret>"; only a
// hash of the secret is stored.
type JoinToken struct {
	ID          string // 6 characters [a-z0-9]
	SecretHash  []byte // sha256 of the secret
	Description string
	AreaID      ids.ID // area for servers it creates; zero: the default area
	ServerID    ids.ID // when set, the token enrolls exactly this server
	MaxUses     int    // 0: unlimited
	Uses        int
	ExpiresAt   time.Time // zero: never
	RevokedAt   time.Time // zero: not revoked
	CreatedBy   string
	CreatedAt   time.Time
}

// Enrollment is the outcome of a successful token check, written in one
// transaction: one use of the token is consumed and the server row is created
// or bound to the new certificate.
type Enrollment struct {
	TokenID    string
	Now        time.Time
	ServerID   ids.ID // the id the certificate was issued for
	Create     bool   // true: insert a new server row; false: bind an existing pending one
	AreaID     ids.ID
	ManagerIP  string
	Hostname   string
	CertSerial string
	// KeySum is the SHA-256 of the certificate's public key (DER
	// SubjectPublicKeyInfo); nil when the request could not be parsed.
	KeySum []byte
	// Retry: ServerID came from RetryServer. No use of the token is
	// consumed, and the server must still be waiting for this retry.
	Retry bool
}

// Store is what enroll needs from persistence.
type Store interface {
	CreateJoinToken(ctx context.Context, t *JoinToken) error
	JoinToken(ctx context.Context, id string) (JoinToken, error)
	JoinTokens(ctx context.Context, p paging.Page) ([]JoinToken, int, error)
	RevokeJoinToken(ctx context.Context, id string, now time.Time) error
	// PendingServerByIP returns the id of a server with this managerIp that
	// has no enrolled agent yet, or 0.
	PendingServerByIP(ctx context.Context, ip string) (ids.ID, error)
	// RetryServer returns the id of the server that token tokenID enrolled
	// with the public key whose SHA-256 is keySum, if its agent has not
	// connected since, or 0: an agent that lost the answer may enroll again.
	RetryServer(ctx context.Context, tokenID string, keySum []byte) (ids.ID, error)
	// CompleteEnrollment consumes one use of the token (only while it is
	// unrevoked, unexpired at e.Now and not used up; otherwise
	// ErrTokenRefused) and creates or binds the server. A retry (e.Retry)
	// consumes no use, but the token must still be unrevoked and
	// unexpired. Nothing is written unless all of it succeeds.
	CompleteEnrollment(ctx context.Context, e Enrollment) error
}
