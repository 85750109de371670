package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
)

// memStore is a Store in memory, for this package's tests only.
type memStore struct {
	mu    sync.Mutex
	users map[ids.ID]User
}

func (s *memStore) CreateUser(_ context.Context, u *User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.users {
		if o.Username == u.Username {
			return ErrUserExists
		}
	}
	s.users[u.ID] = *u
	return nil
}

func (s *memStore) UserByName(_ context.Context, name string) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Username == name {
			return u, nil
		}
	}
	return User{}, ErrUserNotFound
}

func (s *memStore) User(_ context.Context, id ids.ID) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[id]; ok {
		return u, nil
	}
	return User{}, ErrUserNotFound
}

func (s *memStore) Users(context.Context, paging.Page) ([]User, int, error) { return nil, 0, nil }
func (s *memStore) DeleteUser(context.Context, ids.ID) error                { return nil }
func (s *memStore) CountUsers(context.Context) (int, error)                 { return len(s.users), nil }

func (s *memStore) SetPassword(_ context.Context, id ids.ID, hash []byte, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return ErrUserNotFound
	}
	u.PasswordHash, u.UpdatedAt, u.TokenGen = hash, now, u.TokenGen+1
	s.users[id] = u
	return nil
}

// FuzzAuthenticate feeds Authenticate tokens: real ones, and everything
// the fuzzer makes of them. A token is accepted only when it is, byte for
// byte, one the service issued to a user of the current generation; all
// else is ErrTokenInvalid (no panic, no other error).
func FuzzAuthenticate(f *testing.F) {
	gen, _ := ids.NewGenerator(1)
	now := time.Unix(1_800_000_000, 0)
	svc, err := NewService(&memStore{users: map[ids.ID]User{}}, bytes.Repeat([]byte("k"), 32), time.Hour, bcrypt.MinCost, gen, func() time.Time { return now })
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	u, err := svc.CreateUser(ctx, "alice", "password-1", RoleOperator)
	if err != nil {
		f.Fatal(err)
	}
	old, _, _, err := svc.Login(ctx, "alice", "password-1")
	if err != nil {
		f.Fatal(err)
	}
	if err := svc.ChangePassword(ctx, u.ID, "password-1", "password-2"); err != nil {
		f.Fatal(err)
	}
	valid, _, _, err := svc.Login(ctx, "alice", "password-2")
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		valid, old, "", ".", "..", "a.b.c", valid + "=", valid + ".x", strings.Join([]string{parts[0], parts[1], ""}, "."),
		"eyJhbGciOiJub25lIn0." + parts[1] + ".", strings.ToUpper(valid),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS512","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := svc.Authenticate(ctx, tok)
		if err != nil {
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("Authenticate(%q): %v, want ErrTokenInvalid", tok, err)
			}
			return
		}
		if tok != valid || got.ID != u.ID {
			t.Fatalf("Authenticate accepted %q as %+v; only the issued token %q is valid", tok, got, valid)
		}
	})
}
