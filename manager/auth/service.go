package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/paging"
)

const (
	issuer            = "admq-manager"
	minPasswordLength = 8
	// bcrypt ignores bytes past 72; refuse them rather than pretend.
	maxPasswordLength = 72
)

var usernameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// Service checks credentials and issues and verifies console tokens.
type Service struct {
	store  Store
	secret []byte
	cost   int
	ttl    time.Duration
	ids    *ids.Generator
	now    func() time.Time
	// dummy is compared against when a user does not exist, so that a
	// login for an unknown name takes as long as one with a wrong password.
	dummy []byte
}

// NewService returns a Service signing HS256 tokens with secret that last
// ttl and hashing passwords with bcrypt at cost (bcrypt.DefaultCost in
// production; tests use bcrypt.MinCost).
func NewService(store Store, secret []byte, ttl time.Duration, cost int, gen *ids.Generator, now func() time.Time) (*Service, error) {
	if len(secret) < 32 {
		return nil, errors.New("jwt secret shorter than 32 bytes")
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("bcrypt cost %d out of range", cost)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not-a-password"), cost)
	if err != nil {
		return nil, fmt.Errorf("bcrypt: %w", err)
	}
	return &Service{store: store, secret: secret, cost: cost, ttl: ttl, ids: gen, now: now, dummy: dummy}, nil
}

type claims struct {
	Role string `json:"role"`
	Name string `json:"name"`
	// Gen is the user's TokenGen when the token was issued.
	Gen *int64 `json:"gen"`
	jwt.RegisteredClaims
}

// Login checks a username and password and returns a signed token.
func (s *Service) Login(ctx context.Context, username, password string) (token string, expires time.Time, u User, err error) {
	u, err = s.store.UserByName(ctx, username)
	if errors.Is(err, ErrUserNotFound) {
		_ = bcrypt.CompareHashAndPassword(s.dummy, []byte(password))
		return "", time.Time{}, User{}, ErrBadCredentials
	}
	if err != nil {
		return "", time.Time{}, User{}, fmt.Errorf("login: %w", err)
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(password)) != nil {
		return "", time.Time{}, User{}, ErrBadCredentials
	}
	now := s.now()
	expires = now.Add(s.ttl)
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		Role: string(u.Role),
		Name: u.Username,
		Gen:  &u.TokenGen,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   u.ID.String(),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
	})
	token, err = t.SignedString(s.secret)
	if err != nil {
		return "", time.Time{}, User{}, fmt.Errorf("sign token: %w", err)
	}
	return token, expires, u, nil
}

// Authenticate verifies a token and returns its user as stored now, so that
// a deleted user or a changed role takes effect at once.
func (s *Service) Authenticate(ctx context.Context, token string) (User, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return User{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if c.IssuedAt == nil || c.Gen == nil {
		return User{}, fmt.Errorf("%w: no issue time or generation", ErrTokenInvalid)
	}
	id, err := ids.Parse(c.Subject)
	if err != nil {
		return User{}, fmt.Errorf("%w: subject: %v", ErrTokenInvalid, err)
	}
	u, err := s.store.User(ctx, id)
	if errors.Is(err, ErrUserNotFound) {
		return User{}, fmt.Errorf("%w: user no longer exists", ErrTokenInvalid)
	}
	if err != nil {
		return User{}, err
	}
	// A token issued before the password changed is no longer good.
	if *c.Gen != u.TokenGen {
		return User{}, fmt.Errorf("%w: credentials changed since the token was issued", ErrTokenInvalid)
	}
	return u, nil
}

// CreateUser validates and stores a new user.
func (s *Service) CreateUser(ctx context.Context, username, password string, role Role) (User, error) {
	if !usernameRe.MatchString(username) {
		return User{}, invalid.Field("username", "1-64 characters: letters, digits, '_', '.', '@', '-'")
	}
	if !role.Valid() {
		return User{}, invalid.Field("role", "must be admin, operator or viewer")
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return User{}, err
	}
	now := s.now()
	u := User{ID: s.ids.Next(), Username: username, PasswordHash: hash, Role: role, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateUser(ctx, &u); err != nil {
		return User{}, err
	}
	return u, nil
}

// Users lists users.
func (s *Service) Users(ctx context.Context, p paging.Page) ([]User, int, error) {
	return s.store.Users(ctx, p)
}

// DeleteUser removes a user; the last admin stays.
func (s *Service) DeleteUser(ctx context.Context, id ids.ID) error {
	return s.store.DeleteUser(ctx, id)
}

// ChangePassword sets a new password after checking the old one.
func (s *Service) ChangePassword(ctx context.Context, id ids.ID, oldPassword, newPassword string) error {
	u, err := s.store.User(ctx, id)
	if err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(oldPassword)) != nil {
		return ErrBadCredentials
	}
	hash, err := s.hashPassword(newPassword)
	if err != nil {
		return err
	}
	return s.store.SetPassword(ctx, id, hash, s.now())
}

// EnsureAdmin creates the user "admin" when there are no users at all. With
// an empty password it generates one; it returns the password it set, or ""
// when users already existed.
func (s *Service) EnsureAdmin(ctx context.Context, password string) (string, error) {
	n, err := s.store.CountUsers(ctx)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return "", nil
	}
	if password == "" {
		if password, err = RandomPassword(); err != nil {
			return "", err
		}
	}
	if _, err := s.CreateUser(ctx, "admin", password, RoleAdmin); err != nil {
		return "", fmt.Errorf("create first admin: %w", err)
	}
	return password, nil
}

func (s *Service) hashPassword(p string) ([]byte, error) {
	if len(p) < minPasswordLength || len(p) > maxPasswordLength {
		return nil, invalid.Field("password", "must be %d to %d bytes", minPasswordLength, maxPasswordLength)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(p), s.cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// RandomPassword returns a 20-character password from an unambiguous alphabet.
func RandomPassword() (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
