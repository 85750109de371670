package enroll

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/joinstring"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

// Signer issues agent client certificates; manager/pki implements it.
type Signer interface {
	SignAgentCSR(csrDER []byte, agentID string, validity time.Duration) (certPEM []byte, serialHex string, notAfter time.Time, err error)
	CertPEM() []byte
	Pin() string
}

// Areas resolves the area a token places servers in.
type Areas interface {
	Area(ctx context.Context, id ids.ID) (fleet.Area, error)
	DefaultArea(ctx context.Context) (fleet.Area, error)
}

// Limits on what a token may say.
const (
	MaxTokenTTL     = 365 * 24 * time.Hour
	DefaultTokenTTL = 24 * time.Hour
	MaxTokenUses    = 1_000_000
	maxDescription  = 256
)

var (
	tokenIDRe     = regexp.MustCompile(`^[a-z0-9]{6}$`)
	tokenSecretRe = regexp.MustCompile(`^[a-z0-9]{16}$`)
)

// Service issues, lists and revokes join tokens and enrolls agents.
type Service struct {
	store        Store
	areas        Areas
	signer       Signer
	ids          *ids.Generator
	now          func() time.Time
	certValidity time.Duration
	log          *slog.Logger
}

// NewService returns a Service. certValidity is how long agent certificates last.
func NewService(store Store, areas Areas, signer Signer, gen *ids.Generator, now func() time.Time, certValidity time.Duration, log *slog.Logger) *Service {
	return &Service{store: store, areas: areas, signer: signer, ids: gen, now: now, certValidity: certValidity, log: log}
}

// TokenSpec is what an admin asks for when creating a token.
type TokenSpec struct {
	Description string
	AreaID      ids.ID        // zero: the default area
	ServerID    ids.ID        // set by SSH bootstrap: enroll exactly this server
	MaxUses     int           // 0: unlimited
	TTL         time.Duration // 0: DefaultTokenTTL; negative: never expires
	CreatedBy   string
}

// IssuedToken is a new token with its secret, shown once.
type IssuedToken struct {
	JoinToken
	// Secret is "<id>.<secret>"; JoinString adds the CA pin.
	Secret     string
	JoinString string
	CAPin      string
}

// CreateToken validates spec and stores a new token.
func (s *Service) CreateToken(ctx context.Context, spec TokenSpec) (IssuedToken, error) {
	if err := invalid.Text("description", spec.Description, 0, maxDescription); err != nil {
		return IssuedToken{}, err
	}
	if spec.MaxUses < 0 || spec.MaxUses > MaxTokenUses {
		return IssuedToken{}, invalid.Field("maxUses", "must be between 0 (unlimited) and %d", MaxTokenUses)
	}
	if spec.TTL > MaxTokenTTL {
		return IssuedToken{}, invalid.Field("ttlSeconds", "at most %d", int(MaxTokenTTL.Seconds()))
	}
	var area fleet.Area
	var err error
	if spec.AreaID.IsZero() {
		area, err = s.areas.DefaultArea(ctx)
		if errors.Is(err, fleet.ErrAreaNotFound) {
			err = nil // no default area: servers get none
		}
	} else {
		area, err = s.areas.Area(ctx, spec.AreaID)
	}
	if err != nil {
		return IssuedToken{}, fmt.Errorf("token area: %w", err)
	}
	id, err := randomString(6)
	if err != nil {
		return IssuedToken{}, err
	}
	secret, err := randomString(16)
	if err != nil {
		return IssuedToken{}, err
	}
	now := s.now()
	sum := sha256.Sum256([]byte(secret))
	t := JoinToken{
		ID:          id,
		SecretHash:  sum[:],
		Description: spec.Description,
		AreaID:      area.ID,
		ServerID:    spec.ServerID,
		MaxUses:     spec.MaxUses,
		CreatedBy:   spec.CreatedBy,
		CreatedAt:   now,
	}
	switch {
	case spec.TTL == 0:
		t.ExpiresAt = now.Add(DefaultTokenTTL)
	case spec.TTL > 0:
		t.ExpiresAt = now.Add(spec.TTL)
	}
	if err := s.store.CreateJoinToken(ctx, &t); err != nil {
		return IssuedToken{}, fmt.Errorf("create join token: %w", err)
	}
	pin := s.signer.Pin()
	plain := id + "." + secret
	return IssuedToken{JoinToken: t, Secret: plain, JoinString: joinstring.Format(plain, pin), CAPin: pin}, nil
}

// Tokens lists tokens, newest first.
func (s *Service) Tokens(ctx context.Context, p paging.Page) ([]JoinToken, int, error) {
	return s.store.JoinTokens(ctx, p)
}

// Revoke makes a token unusable from now on.
func (s *Service) Revoke(ctx context.Context, id string) error {
	if !tokenIDRe.MatchString(id) {
		return invalid.Field("id", "a token id is 6 characters a-z, 0-9")
	}
	return s.store.RevokeJoinToken(ctx, id, s.now())
}

// Request is an agent's enrollment attempt.
type Request struct {
	Token        string // "<id>.<secret>"
	CSR          []byte
	Hostname     string
	AgentVersion string
	AdvertiseIP  string // what the agent says its address is; may be empty
	RemoteIP     string // what the manager sees
}

// Result is what an enrolled agent receives.
type Result struct {
	AgentID ids.ID
	CertPEM []byte
	CAPEM   []byte
}

// Enroll checks the token and, if it is good, issues a certificate and
// records the server. A refused token writes nothing.
func (s *Service) Enroll(ctx context.Context, r Request) (Result, error) {
	log := s.log.With("remote", r.RemoteIP, "hostname", r.Hostname)
	tokID, secret, ok := strings.Cut(r.Token, ".")
	if !ok || !tokenIDRe.MatchString(tokID) || !tokenSecretRe.MatchString(secret) {
		log.Warn("enrollment refused: malformed token")
		return Result{}, ErrTokenRefused
	}
	log = log.With("token", tokID)
	t, err := s.store.JoinToken(ctx, tokID)
	if errors.Is(err, ErrTokenNotFound) {
		log.Warn("enrollment refused: unknown token")
		return Result{}, ErrTokenRefused
	}
	if err != nil {
		return Result{}, fmt.Errorf("enroll: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	now := s.now()
	switch {
	case subtle.ConstantTimeCompare(sum[:], t.SecretHash) != 1:
		log.Warn("enrollment refused: wrong secret")
		return Result{}, ErrTokenRefused
	case !t.RevokedAt.IsZero():
		log.Warn("enrollment refused: token revoked")
		return Result{}, ErrTokenRefused
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		log.Warn("enrollment refused: token expired")
		return Result{}, ErrTokenRefused
	}
	// An agent whose answer was lost retries with the same key: it gets a
	// new certificate for the server it enrolled, without a use of the token.
	keySum := csrKeySum(r.CSR)
	var retry ids.ID
	if keySum != nil {
		if retry, err = s.store.RetryServer(ctx, t.ID, keySum); err != nil {
			return Result{}, fmt.Errorf("enroll: %w", err)
		}
	}
	if retry.IsZero() && t.MaxUses > 0 && t.Uses >= t.MaxUses {
		log.Warn("enrollment refused: token used up")
		return Result{}, ErrTokenRefused
	}
	ip, err := pickIP(r.AdvertiseIP, r.RemoteIP)
	if err != nil {
		return Result{}, err
	}
	if len(r.Hostname) > 253 {
		return Result{}, invalid.Field("hostname", "longer than 253 bytes")
	}
	e := Enrollment{TokenID: t.ID, Now: now, AreaID: t.AreaID, ManagerIP: ip, Hostname: r.Hostname, KeySum: keySum}
	res, e, err := s.complete(ctx, t, r.CSR, e, retry)
	if retry.IsZero() && keySum != nil && (errors.Is(err, ErrTokenRefused) || errors.Is(err, ErrAlreadyEnrolled)) {
		// An earlier attempt with this key, whose answer the agent gave up
		// waiting for, may have committed just now: answer as its retry.
		if again, lerr := s.store.RetryServer(ctx, t.ID, keySum); lerr == nil && !again.IsZero() {
			res, e, err = s.complete(ctx, t, r.CSR, e, again)
		}
	}
	if err != nil {
		if errors.Is(err, ErrTokenRefused) {
			log.Warn("enrollment refused: token no longer usable")
		}
		return Result{}, err
	}
	log.Info("agent enrolled", "server", e.ServerID, "managerIp", ip, "new", e.Create, "retry", e.Retry)
	return res, nil
}

// complete picks the server e enrolls (retry when not zero, else the
// token's server, a pending one with e's address or a new one), signs the
// request for it and records the enrollment.
func (s *Service) complete(ctx context.Context, t JoinToken, csr []byte, e Enrollment, retry ids.ID) (Result, Enrollment, error) {
	e.Create, e.Retry = false, false
	switch {
	case !retry.IsZero():
		e.ServerID, e.Retry = retry, true
	case !t.ServerID.IsZero():
		e.ServerID = t.ServerID
	default:
		pending, err := s.store.PendingServerByIP(ctx, e.ManagerIP)
		if err != nil {
			return Result{}, e, fmt.Errorf("enroll: %w", err)
		}
		if pending.IsZero() {
			e.ServerID, e.Create = s.ids.Next(), true
		} else {
			e.ServerID = pending
		}
	}
	certPEM, serial, _, err := s.signer.SignAgentCSR(csr, e.ServerID.String(), s.certValidity)
	if err != nil {
		return Result{}, e, invalid.Field("csr", "%v", err)
	}
	e.CertSerial = serial
	if err := s.store.CompleteEnrollment(ctx, e); err != nil {
		return Result{}, e, fmt.Errorf("enroll: %w", err)
	}
	return Result{AgentID: e.ServerID, CertPEM: certPEM, CAPEM: s.signer.CertPEM()}, e, nil
}

// csrKeySum returns the SHA-256 of the public key (SubjectPublicKeyInfo) a
// certificate request asks for, or nil when it cannot be read; the signer
// refuses such a request anyway.
func csrKeySum(der []byte) []byte {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil
	}
	spki, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(spki)
	return sum[:]
}

func pickIP(advertised, remote string) (string, error) {
	if advertised != "" {
		a, err := netip.ParseAddr(advertised)
		if err != nil || a.IsUnspecified() || a.IsMulticast() {
			return "", invalid.Field("advertiseIp", "%q is not a usable IP address", advertised)
		}
		return a.Unmap().String(), nil
	}
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return "", fmt.Errorf("enroll: remote address %q: %w", remote, err)
	}
	return a.Unmap().String(), nil
}

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	// 256 is not a multiple of 36; reject the top bytes to stay uniform.
	out := make([]byte, 0, n)
	for len(out) < n {
		for _, c := range b {
			if c < 252 && len(out) < n {
				out = append(out, alphabet[int(c)%36])
			}
		}
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("random token: %w", err)
		}
	}
	return string(out), nil
}
