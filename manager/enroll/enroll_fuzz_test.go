package enroll

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/joinstring"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

// memTokens is a Store in memory, for this package's tests only.
type memTokens struct {
	mu       sync.Mutex
	tokens   map[string]JoinToken
	enrolled int
}

func (m *memTokens) CreateJoinToken(_ context.Context, t *JoinToken) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[t.ID] = *t
	return nil
}

func (m *memTokens) JoinToken(_ context.Context, id string) (JoinToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	if !ok {
		return JoinToken{}, ErrTokenNotFound
	}
	return t, nil
}

func (m *memTokens) JoinTokens(context.Context, paging.Page) ([]JoinToken, int, error) {
	return nil, 0, nil
}
func (m *memTokens) RevokeJoinToken(context.Context, string, time.Time) error  { return nil }
func (m *memTokens) PendingServerByIP(context.Context, string) (ids.ID, error) { return 0, nil }
func (m *memTokens) RetryServer(context.Context, string, []byte) (ids.ID, error) {
	return 0, nil
}

func (m *memTokens) CompleteEnrollment(_ context.Context, e Enrollment) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enrolled++
	return nil
}

type oneArea struct{}

func (oneArea) Area(context.Context, ids.ID) (fleet.Area, error) { return fleet.Area{ID: 1}, nil }
func (oneArea) DefaultArea(context.Context) (fleet.Area, error)  { return fleet.Area{ID: 1}, nil }

type stubSigner struct{}

func (stubSigner) SignAgentCSR([]byte, string, time.Duration) ([]byte, string, time.Time, error) {
	return []byte("cert"), "01", time.Time{}, nil
}
func (stubSigner) CertPEM() []byte { return []byte("ca") }
func (stubSigner) Pin() string     { return "sha256:" + strings.Repeat("0", 64) }

// FuzzEnroll feeds Enroll the token part of join strings: an agent gets a
// certificate only with the exact token issued ("<id>.<secret>"); every
// other string is ErrTokenRefused and records nothing.
func FuzzEnroll(f *testing.F) {
	store := &memTokens{tokens: map[string]JoinToken{}}
	gen, _ := ids.NewGenerator(1)
	s := NewService(store, oneArea{}, stubSigner{}, gen, time.Now, time.Hour, slog.New(slog.DiscardHandler))
	issued, err := s.CreateToken(context.Background(), TokenSpec{MaxUses: 0})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := joinstring.Parse(issued.JoinString)
	id, secret, _ := strings.Cut(good, ".")
	for _, tok := range []string{good, "", ".", id + ".", "." + secret, id + "." + strings.ToUpper(secret), good + "x", " " + good,
		id + "." + secret[:len(secret)-1], strings.Repeat("a", 6) + "." + secret, good + "::sha256:00", id + ".." + secret} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		store.mu.Lock()
		before := store.enrolled
		store.mu.Unlock()
		res, err := s.Enroll(context.Background(), Request{Token: tok, RemoteIP: "198.18.0.1", CSR: []byte("csr")})
		store.mu.Lock()
		after := store.enrolled
		store.mu.Unlock()
		if tok == good {
			if err != nil || res.AgentID.IsZero() || after != before+1 {
				t.Fatalf("the issued token was refused: %v", err)
			}
			return
		}
		if !errors.Is(err, ErrTokenRefused) || after != before {
			t.Fatalf("Enroll(%q) = %+v, %v (enrollments %d -> %d); want ErrTokenRefused and nothing recorded", tok, res, err, before, after)
		}
	})
}
