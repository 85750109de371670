// Package shortcall carries one unary gRPC call on a tunnel stream of its
// own, without HTTP/2.
//
// The manager and an agent share one yamux session and open a stream per
// call. Over plain gRPC every such stream must first become an HTTP/2
// connection: client preface, SETTINGS both ways and their acks, a window
// update, then HEADERS and DATA, each its own yamux frame and TLS record;
// and each end keeps a transport with three goroutines and its buffers (on
// the manager, a grpc.ClientConn per agent with its resolver and balancer
// besides) for as long as the connection is kept. What HTTP/2 adds there is
// what yamux already does: multiplexing and flow control per stream. A
// short call keeps the rest of gRPC — the generated clients and the
// services' method handlers, protobuf messages, status codes with their
// details, deadlines, cancellation and interceptors — and replaces only the
// framing: one request frame, one response frame, then the stream closes.
//
// Both ends agree on short calls in the TLS handshake (ALPN); an end that
// does not offer them gets plain gRPC on every stream, as before. Calls
// that stream messages (package pushes) stay on gRPC.
//
// A request is the byte Magic, a version byte, the method's length (2
// bytes), the timeout in milliseconds (4 bytes; 0: none), the message's
// length (4 bytes), then the method and the message. A response is the
// length of an encoded google.rpc.Status (4 bytes; 0: OK) and of the
// message (4 bytes), then both. Integers are big-endian.
package shortcall

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ALPN is the TLS application protocol with which both ends of a tunnel
// say that they speak short calls.
const ALPN = "admq-tunnel/2"

// Magic opens a short call's request. An HTTP/2 client preface, the start
// of every plain gRPC stream, begins with 'P'.
const Magic byte = 0xAD

const (
	version   byte = 1
	reqHeader      = 12 // magic, version, method length, timeout, message length
	resHeader      = 8  // status length, message length
	// maxMethod bounds a method name ("/package.Service/Method").
	maxMethod = 256
)

// Invoke runs method with req on conn, a stream of its own, decodes the
// answer into reply and closes conn. maxRecv bounds the answer's message.
// Errors are gRPC status errors: the callee's own, or Unavailable when the
// stream failed, or Canceled/DeadlineExceeded when ctx ended first (the
// callee then sees its context cancelled).
func Invoke(ctx context.Context, conn net.Conn, method string, req, reply any, maxRecv int) error {
	defer conn.Close()
	in, ok := req.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok || !ok2 {
		return status.Errorf(codes.Internal, "shortcall: %s: messages are not protobuf messages", method)
	}
	if len(method) > maxMethod {
		return status.Errorf(codes.Internal, "shortcall: method name too long")
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return status.FromContextError(context.DeadlineExceeded).Err()
		}
	}
	// One buffer, one write: the header, the method and the message go out
	// as one yamux frame and one TLS record.
	size := proto.Size(in)
	frame := make([]byte, reqHeader+len(method), reqHeader+len(method)+size)
	frame[0], frame[1] = Magic, version
	binary.BigEndian.PutUint16(frame[2:], uint16(len(method)))
	binary.BigEndian.PutUint32(frame[4:], timeoutMillis(timeout))
	binary.BigEndian.PutUint32(frame[8:], uint32(size))
	copy(frame[reqHeader:], method)
	frame, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(frame, in)
	if err != nil {
		return status.Errorf(codes.Internal, "shortcall: encode %s request: %v", method, err)
	}

	// Leaving early unblocks the reads below; closing the stream then
	// tells the callee, whose context ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	fail := func(what string, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return status.FromContextError(cerr).Err()
		}
		return status.Errorf(codes.Unavailable, "shortcall: %s: %v", what, err)
	}
	if _, err := conn.Write(frame); err != nil {
		return fail("send request", err)
	}
	var hdr [resHeader]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return fail("read answer", err)
	}
	stLen, msgLen := binary.BigEndian.Uint32(hdr[0:]), binary.BigEndian.Uint32(hdr[4:])
	if stLen > 1<<20 || int64(msgLen) > int64(maxRecv) {
		return status.Errorf(codes.ResourceExhausted, "shortcall: %s answer of %d bytes is larger than the limit of %d", method, msgLen, maxRecv)
	}
	body := make([]byte, int(stLen)+int(msgLen))
	if _, err := io.ReadFull(conn, body); err != nil {
		return fail("read answer", err)
	}
	if stLen > 0 {
		return decodeStatus(body[:stLen])
	}
	if err := proto.Unmarshal(body[stLen:], out); err != nil {
		return status.Errorf(codes.Internal, "shortcall: decode %s answer: %v", method, err)
	}
	return nil
}

func timeoutMillis(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return uint32(min(int64(ms), math.MaxUint32))
}

// Sniff reads the first byte of a stream, waiting at most wait for it. It
// reports whether the stream carries a short call, and returns the stream
// with that byte unread again for whichever server takes it.
func Sniff(conn net.Conn, wait time.Duration) (short bool, rest net.Conn, err error) {
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return false, nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return false, nil, fmt.Errorf("shortcall: first byte of a stream: %w", err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return false, nil, err
	}
	return b[0] == Magic, &unreadConn{Conn: conn, first: b[0], unread: true}, nil
}

// unreadConn is a stream whose first byte has been read and is served again.
type unreadConn struct {
	net.Conn
	first  byte
	unread bool
}

func (c *unreadConn) Read(p []byte) (int, error) {
	if c.unread && len(p) > 0 {
		c.unread = false
		p[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(p)
}

// ClientConn is a grpc.ClientConnInterface for the generated clients:
// unary calls are short calls on a stream from Open; streaming calls go to
// Streams, which may be nil when there are none to make.
type ClientConn struct {
	// Open opens a new stream to the callee.
	Open func() (net.Conn, error)
	// MaxRecv bounds an answer's message in bytes.
	MaxRecv int
	// Streams carries streaming calls.
	Streams grpc.ClientConnInterface
}

var _ grpc.ClientConnInterface = (*ClientConn)(nil)

// Invoke implements grpc.ClientConnInterface. Call options are ignored.
func (c *ClientConn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	conn, err := c.Open()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return status.FromContextError(cerr).Err()
		}
		return status.Errorf(codes.Unavailable, "shortcall: open stream: %v", err)
	}
	return Invoke(ctx, conn, method, args, reply, c.MaxRecv)
}

// NewStream implements grpc.ClientConnInterface by handing the call to
// Streams.
func (c *ClientConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c.Streams == nil {
		return nil, status.Errorf(codes.Unimplemented, "shortcall: no streaming calls on this connection (%s)", method)
	}
	return c.Streams.NewStream(ctx, desc, method, opts...)
}
