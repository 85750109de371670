package tunnel

import (
	"context"
	"errors"
	"net"

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
