package tunnel

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/admq/admq-manager/internal/ids"
)

// Peer identifies the agent at the other end of a gRPC call; it is the
// call's credentials.AuthInfo. TLS is done once per session, below yamux, so
// the gRPC layer only carries the identity established there.
type Peer struct {
	credentials.CommonAuthInfo
	// AgentID is zero on an enrollment session (no client certificate yet).
	AgentID  ids.ID
	RemoteIP string
}

// AuthType implements credentials.AuthInfo.
func (Peer) AuthType() string { return "admq-tunnel" }

// PeerFrom returns the tunnel peer of a gRPC call.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Peer{}, false
	}
	tp, ok := p.AuthInfo.(Peer)
	return tp, ok
}

// streamConn is a yamux stream that knows which session it belongs to.
type streamConn struct {
	net.Conn
	peer Peer
}

// sessionCreds hands the session's identity to gRPC for every stream.
type sessionCreds struct{}

var _ credentials.TransportCredentials = sessionCreds{}

func (sessionCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	sc, ok := c.(*streamConn)
	if !ok {
		return nil, nil, errors.New("tunnel: connection did not come from an agent session")
	}
	return c, sc.peer, nil
}

func (sessionCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, Peer{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (sessionCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "admq-tunnel"}
}
func (c sessionCreds) Clone() credentials.TransportCredentials { return c }
func (sessionCreds) OverrideServerName(string) error           { return nil }

// ticketKeys derives the keys of the TLS session tickets the manager hands
// to agents from a secret kept in the data dir (pki.TicketSecret), so that a
// ticket outlives a restart of the manager: the reconnect after a restart
// resumes the session, which spares both sides the certificate signatures
// and chain checks of a full handshake. The keys rotate every period; a
// ticket is issued under the current key and taken under it or the previous
// one, so it lasts one to two periods (crypto/tls also refuses a ticket past
// its client certificate's expiry or older than 7 days).
//
// A resumed session carries the agent's certificate from the ticket and goes
// through the same VerifyConnection as a full handshake: a deleted or
// re-enrolled agent is refused just the same. A ticket from an enrollment
// session carries no certificate and resumes only another enrollment session.
type ticketKeys struct {
	secret []byte
	period time.Duration

	mu    sync.Mutex
	epoch int64
	keys  [][32]byte // for epoch: its key, then the previous one
}

// ticketPeriod is how often the ticket keys change.
const ticketPeriod = 24 * time.Hour

func newTicketKeys(secret []byte, period time.Duration) *ticketKeys {
	if len(secret) == 0 {
		return nil
	}
	return &ticketKeys{secret: secret, period: period, epoch: -1}
}

// epochOf is the period now falls in (0 without keys of our own).
func (k *ticketKeys) epochOf(now time.Time) int64 {
	if k == nil {
		return 0
	}
	return now.UnixNano() / int64(k.period)
}

// set gives tc the ticket keys for now.
func (k *ticketKeys) set(tc *tls.Config, now time.Time) error {
	if k == nil {
		return nil // crypto/tls's own keys, which die with the process
	}
	e := now.UnixNano() / int64(k.period)
	k.mu.Lock()
	if e != k.epoch {
		cur, err := k.derive(e)
		if err != nil {
			k.mu.Unlock()
			return err
		}
		prev, err := k.derive(e - 1)
		if err != nil {
			k.mu.Unlock()
			return err
		}
		k.epoch, k.keys = e, [][32]byte{cur, prev}
	}
	keys := k.keys
	k.mu.Unlock()
	tc.SetSessionTicketKeys(keys)
	return nil
}

// derive is the key of one period.
func (k *ticketKeys) derive(epoch int64) ([32]byte, error) {
	var out [32]byte
	info := binary.BigEndian.AppendUint64([]byte("admq tunnel session ticket key "), uint64(epoch))
	b, err := hkdf.Key(sha256.New, k.secret, nil, string(info), len(out))
	if err != nil {
		return out, err
	}
	copy(out[:], b)
	return out, nil
}
