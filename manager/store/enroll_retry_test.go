package store_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/tlsutil"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/pki"
	"github.com/admq/admq-manager/manager/store"
)

// oneArea places every token's servers in a.
type oneArea struct{ a fleet.Area }

func (o oneArea) Area(context.Context, ids.ID) (fleet.Area, error) { return o.a, nil }
func (o oneArea) DefaultArea(context.Context) (fleet.Area, error)  { return o.a, nil }

// clock is a manager clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type retryEnv struct {
	db    *store.DB
	svc   *enroll.Service
	clock *clock
}

func newRetryEnv(t *testing.T) retryEnv {
	t.Helper()
	db := MustOpen(t)
	c := &clock{t: base.Add(time.Hour)}
	ca, err := pki.Open(filepath.Join(t.TempDir(), "pki"), c.now)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := ids.NewGenerator(1)
	svc := enroll.NewService(db, oneArea{mustArea(t, db, "default")}, ca, gen, c.now, time.Hour, slog.New(slog.DiscardHandler))
	return retryEnv{db: db, svc: svc, clock: c}
}

func (e retryEnv) token(t *testing.T, maxUses int) enroll.IssuedToken {
	t.Helper()
	tok, err := e.svc.CreateToken(t.Context(), enroll.TokenSpec{MaxUses: maxUses, TTL: time.Hour, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// enroll is one attempt: a fresh CSR for keyPEM from 198.18.0.1.
func (e retryEnv) enroll(t *testing.T, tok enroll.IssuedToken, keyPEM []byte) (enroll.Result, error) {
	t.Helper()
	csr, err := tlsutil.CSRForKey(keyPEM, "admq-agent")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.advance(time.Second)
	return e.svc.Enroll(t.Context(), enroll.Request{Token: tok.Secret, CSR: csr, Hostname: "h1", RemoteIP: "198.18.0.1"})
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k, err := tlsutil.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// certKeyMatches reports whether the certificate certPEM is for keyPEM.
func certKeyMatches(t *testing.T, certPEM, keyPEM []byte) bool {
	t.Helper()
	_, err := tls.X509KeyPair(certPEM, keyPEM)
	return err == nil
}

func serialOf(t *testing.T, certPEM []byte) string {
	t.Helper()
	_, serial, _, err := tlsutil.LeafInfo(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return serial
}

// TestEnrollRetryAfterLostAnswer: an agent whose enrollment answer was lost
// retries with the same key and the same token; it gets a new certificate
// for the server the first attempt created, without another use of the
// token, as long as that server's agent has not connected since.
func TestEnrollRetryAfterLostAnswer(t *testing.T) {
	ctx := context.Background()

	// first enrolls once with a single-use token; the answer is "lost".
	first := func(t *testing.T) (retryEnv, enroll.IssuedToken, []byte, enroll.Result) {
		e := newRetryEnv(t)
		tok := e.token(t, 1)
		key := newKey(t)
		res, err := e.enroll(t, tok, key)
		if err != nil {
			t.Fatalf("first enrollment: %v", err)
		}
		return e, tok, key, res
	}
	// unchanged checks that a refused attempt left server and token alone.
	unchanged := func(t *testing.T, e retryEnv, tok enroll.IssuedToken, res enroll.Result) {
		t.Helper()
		srv, err := e.db.Server(ctx, res.AgentID)
		if err != nil {
			t.Fatal(err)
		}
		if srv.CertSerial != serialOf(t, res.CertPEM) || countServers(t, e.db) != 1 || tokenUses(t, e.db, tok.ID) != 1 {
			t.Errorf("a refused retry changed something: serial %s (want %s), %d servers, %d uses",
				srv.CertSerial, serialOf(t, res.CertPEM), countServers(t, e.db), tokenUses(t, e.db, tok.ID))
		}
	}

	t.Run("same key gets a new certificate for the same server", func(t *testing.T) {
		e, tok, key, res1 := first(t)
		for attempt := 2; attempt <= 3; attempt++ {
			res, err := e.enroll(t, tok, key)
			if err != nil {
				t.Fatalf("retry %d: %v", attempt, err)
			}
			if res.AgentID != res1.AgentID {
				t.Errorf("retry %d enrolled server %d, want %d", attempt, res.AgentID, res1.AgentID)
			}
			if !certKeyMatches(t, res.CertPEM, key) {
				t.Errorf("retry %d: the certificate is not for the agent's key", attempt)
			}
			serial, old := serialOf(t, res.CertPEM), serialOf(t, res1.CertPEM)
			if serial == old {
				t.Errorf("retry %d reissued serial %s", attempt, serial)
			}
			srv, err := e.db.Server(ctx, res.AgentID)
			if err != nil {
				t.Fatal(err)
			}
			if srv.CertSerial != serial || srv.AgentStatus != fleet.StatusOffline {
				t.Errorf("server = serial %s, %s; want serial %s, offline", srv.CertSerial, srv.AgentStatus, serial)
			}
			if revoked, _ := e.db.CertRevoked(ctx, old); !revoked {
				t.Errorf("retry %d: the previous serial %s is not revoked", attempt, old)
			}
			if revoked, _ := e.db.CertRevoked(ctx, serial); revoked {
				t.Errorf("retry %d: the new serial %s is revoked", attempt, serial)
			}
			if n := tokenUses(t, e.db, tok.ID); n != 1 {
				t.Errorf("retry %d: token uses = %d, want 1", attempt, n)
			}
			if n := countServers(t, e.db); n != 1 {
				t.Errorf("retry %d: %d servers, want 1", attempt, n)
			}
			res1 = res
		}
	})

	t.Run("another key is refused", func(t *testing.T) {
		e, tok, _, res := first(t)
		if _, err := e.enroll(t, tok, newKey(t)); !errors.Is(err, enroll.ErrTokenRefused) {
			t.Fatalf("another key with the used-up token: %v, want ErrTokenRefused", err)
		}
		unchanged(t, e, tok, res)
	})

	t.Run("another key with a multi-use token is refused", func(t *testing.T) {
		e := newRetryEnv(t)
		tok := e.token(t, 5)
		res, err := e.enroll(t, tok, newKey(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.enroll(t, tok, newKey(t)); !errors.Is(err, enroll.ErrAlreadyEnrolled) {
			t.Fatalf("another key from the same address: %v, want ErrAlreadyEnrolled", err)
		}
		unchanged(t, e, tok, res)
	})

	t.Run("the same key with another token is refused", func(t *testing.T) {
		e, tok, key, res := first(t)
		other := e.token(t, 5)
		if _, err := e.enroll(t, other, key); !errors.Is(err, enroll.ErrAlreadyEnrolled) {
			t.Fatalf("the same key with another token: %v, want ErrAlreadyEnrolled", err)
		}
		unchanged(t, e, tok, res)
		if n := tokenUses(t, e.db, other.ID); n != 0 {
			t.Errorf("the other token's uses = %d, want 0", n)
		}
	})

	t.Run("after the agent connected", func(t *testing.T) {
		e, tok, key, res := first(t)
		e.clock.advance(time.Second)
		err := e.db.SavePresence(ctx, []fleet.Presence{{ServerID: res.AgentID, Status: fleet.StatusOnline, LastSeen: e.clock.now()}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.enroll(t, tok, key); !errors.Is(err, enroll.ErrTokenRefused) {
			t.Fatalf("retry after the agent connected: %v, want ErrTokenRefused", err)
		}
		unchanged(t, e, tok, res)
	})

	t.Run("revoked token", func(t *testing.T) {
		e, tok, key, res := first(t)
		if err := e.svc.Revoke(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.enroll(t, tok, key); !errors.Is(err, enroll.ErrTokenRefused) {
			t.Fatalf("retry with a revoked token: %v, want ErrTokenRefused", err)
		}
		unchanged(t, e, tok, res)
	})

	t.Run("expired token", func(t *testing.T) {
		e, tok, key, res := first(t)
		e.clock.advance(time.Hour)
		if _, err := e.enroll(t, tok, key); !errors.Is(err, enroll.ErrTokenRefused) {
			t.Fatalf("retry with an expired token: %v, want ErrTokenRefused", err)
		}
		unchanged(t, e, tok, res)
	})

	t.Run("servers enrolled before the migration take no retry", func(t *testing.T) {
		e := newRetryEnv(t)
		tok := e.token(t, 0)
		mustServer(t, e.db, 0, "198.18.0.1", "0a")
		if id, err := e.db.RetryServer(ctx, tok.ID, make([]byte, 32)); err != nil || id != 0 {
			t.Fatalf("RetryServer on a row without enrollment facts = %d, %v; want 0", id, err)
		}
	})
}

// TestCompleteEnrollmentRetryRechecks: the store checks again, in its
// transaction, what the service found before signing.
func TestCompleteEnrollmentRetryRechecks(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	now := base.Add(time.Hour)
	area := mustArea(t, db, "default")
	mustToken(t, db, enroll.JoinToken{ID: "single", AreaID: area.ID, MaxUses: 1})
	mustToken(t, db, enroll.JoinToken{ID: "revokd", AreaID: area.ID, RevokedAt: base})
	sum := make([]byte, 32)
	sum[0] = 1
	first := enroll.Enrollment{TokenID: "single", Now: now, ServerID: nextID(), Create: true, AreaID: area.ID,
		ManagerIP: "10.0.0.9", Hostname: "h", CertSerial: "01", KeySum: sum}
	if err := db.CompleteEnrollment(ctx, first); err != nil {
		t.Fatal(err)
	}
	retry := enroll.Enrollment{TokenID: "single", Now: now.Add(time.Second), ServerID: first.ServerID,
		Hostname: "h", CertSerial: "02", KeySum: sum, Retry: true}
	for _, c := range []struct {
		name string
		edit func(e *enroll.Enrollment)
		want error
	}{
		{"other key", func(e *enroll.Enrollment) { e.KeySum = make([]byte, 32) }, enroll.ErrAlreadyEnrolled},
		{"no key", func(e *enroll.Enrollment) { e.KeySum = nil }, enroll.ErrAlreadyEnrolled},
		{"other server", func(e *enroll.Enrollment) { e.ServerID = nextID() }, enroll.ErrAlreadyEnrolled},
		{"revoked token", func(e *enroll.Enrollment) { e.TokenID = "revokd" }, enroll.ErrTokenRefused},
	} {
		e := retry
		c.edit(&e)
		if err := db.CompleteEnrollment(ctx, e); !errors.Is(err, c.want) {
			t.Errorf("%s: CompleteEnrollment = %v, want %v", c.name, err, c.want)
		}
	}
	if err := db.CompleteEnrollment(ctx, retry); err != nil {
		t.Fatalf("retry: %v", err)
	}
	srv, err := db.Server(ctx, first.ServerID)
	if err != nil {
		t.Fatal(err)
	}
	if srv.CertSerial != "02" || tokenUses(t, db, "single") != 1 {
		t.Errorf("after the retry: serial %s, uses %d; want 02, 1", srv.CertSerial, tokenUses(t, db, "single"))
	}
	if revoked, _ := db.CertRevoked(ctx, "01"); !revoked {
		t.Error("the first serial is not revoked")
	}
	// Once the agent has been seen, no more retries.
	if err := db.SavePresence(ctx, []fleet.Presence{{ServerID: first.ServerID, Status: fleet.StatusOnline, LastSeen: now.Add(2 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	again := retry
	again.Now, again.CertSerial = now.Add(3*time.Second), "03"
	if err := db.CompleteEnrollment(ctx, again); !errors.Is(err, enroll.ErrAlreadyEnrolled) {
		t.Errorf("retry after the agent connected: %v, want ErrAlreadyEnrolled", err)
	}
}

// staleReads is the store as a retry sees it when it arrives while the
// attempt it retries is still being written: the token as it was before,
// and no server to retry yet on the first look.
type staleReads struct {
	*store.DB
	token  enroll.JoinToken
	looked bool
}

func (s *staleReads) JoinToken(context.Context, string) (enroll.JoinToken, error) {
	return s.token, nil
}

func (s *staleReads) RetryServer(ctx context.Context, tokenID string, keySum []byte) (ids.ID, error) {
	if !s.looked {
		s.looked = true
		return 0, nil
	}
	return s.DB.RetryServer(ctx, tokenID, keySum)
}

// TestEnrollRetryRacesTheFirstAttempt: a retry that read the token before
// the attempt it repeats committed is still answered as that retry.
func TestEnrollRetryRacesTheFirstAttempt(t *testing.T) {
	e := newRetryEnv(t)
	tok := e.token(t, 1)
	before, err := e.db.JoinToken(t.Context(), tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	res1, err := e.enroll(t, tok, key)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := ids.NewGenerator(2)
	ca, err := pki.Open(filepath.Join(t.TempDir(), "pki"), e.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	stale := &staleReads{DB: e.db, token: before}
	svc := enroll.NewService(stale, oneArea{}, ca, gen, e.clock.now, time.Hour, slog.New(slog.DiscardHandler))
	csr, err := tlsutil.CSRForKey(key, "admq-agent")
	if err != nil {
		t.Fatal(err)
	}
	res2, err := svc.Enroll(t.Context(), enroll.Request{Token: tok.Secret, CSR: csr, Hostname: "h1", RemoteIP: "198.18.0.1"})
	if err != nil {
		t.Fatalf("retry racing the first attempt: %v", err)
	}
	if res2.AgentID != res1.AgentID || tokenUses(t, e.db, tok.ID) != 1 || countServers(t, e.db) != 1 {
		t.Errorf("retry enrolled server %d (want %d), token uses %d (want 1), %d servers (want 1)",
			res2.AgentID, res1.AgentID, tokenUses(t, e.db, tok.ID), countServers(t, e.db))
	}
}
