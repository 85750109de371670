// Package auth owns console users, their roles, password checks and the JWTs
// the console API accepts.
package auth

import (
	"context"
	"errors"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
)

// Errors callers branch on.
var (
	ErrBadCredentials = errors.New("wrong username or password")
	ErrTokenInvalid   = errors.New("token is missing, expired or not valid")
	ErrUserExists     = errors.New("user already exists")
	ErrUserNotFound   = errors.New("user does not exist")
	ErrLastAdmin      = errors.New("the last admin cannot be removed")
)

// Role is a user's level of access. Each role includes the ones below it.
type Role string

// Roles, from most to least access.
const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleViewer   Role = "viewer"
)

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a user with role r may do what needs role min.
func (r Role) Allows(min Role) bool { return r.rank() >= min.rank() && r.Valid() }

// User is a console account.
type User struct {
	ID           ids.ID
	Username     string
	PasswordHash []byte
	Role         Role
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// TokenGen is the generation of the user's tokens: only a token that
	// carries it is accepted. A password change moves it on.
	TokenGen int64
}

// Store is what auth needs from persistence.
type Store interface {
	CreateUser(ctx context.Context, u *User) error
	UserByName(ctx context.Context, username string) (User, error)
	User(ctx context.Context, id ids.ID) (User, error)
	Users(ctx context.Context, p paging.Page) ([]User, int, error)
	// DeleteUser removes a user; it refuses with ErrLastAdmin to remove the
	// only remaining admin.
	DeleteUser(ctx context.Context, id ids.ID) error
	// SetPassword stores a new hash and moves the user's TokenGen on.
	SetPassword(ctx context.Context, id ids.ID, hash []byte, now time.Time) error
	CountUsers(ctx context.Context) (int, error)
}
