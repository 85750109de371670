package shortcall

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Server serves short calls with the unary methods of the services
// registered on it, through their generated handlers.
type Server struct {
	methods     map[string]method
	maxRecv     int
	interceptor grpc.UnaryServerInterceptor
	// requestWait bounds reading a request once its stream is open.
	requestWait time.Duration
}

type method struct {
	impl    any
	handler grpc.MethodHandler
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// NewServer returns a Server that takes requests of up to maxRecv bytes
// and runs every call through interceptor, if not nil.
func NewServer(maxRecv int, interceptor grpc.UnaryServerInterceptor) *Server {
	return &Server{methods: make(map[string]method), maxRecv: maxRecv, interceptor: interceptor, requestWait: 10 * time.Second}
}

// RegisterService implements grpc.ServiceRegistrar, so the generated
// Register functions take a Server. Only unary methods are served here.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		s.methods["/"+desc.ServiceName+"/"+m.MethodName] = method{impl: impl, handler: m.Handler}
	}
}

// ServeConn serves the one call on conn (a stream Sniff found to carry a
// short call) and closes conn. The call's context derives from ctx and
// carries p, when not nil, as its gRPC peer; it ends when the caller goes.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn, p *peer.Peer) {
	defer conn.Close()
	name, timeout, msg, err := s.readRequest(conn)
	if err != nil {
		// Too late or too garbled to answer in kind: the caller sees the
		// stream close without an answer.
		if st, ok := status.FromError(err); ok {
			_ = writeResponse(conn, st.Proto(), nil)
		}
		return
	}
	m, ok := s.methods[name]
	if !ok {
		_ = writeResponse(conn, status.Newf(codes.Unimplemented, "unknown method %s", name).Proto(), nil)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(cctx, timeout)
		defer cancel()
	}
	if p != nil {
		cctx = peer.NewContext(cctx, p)
	}
	// The caller closes its end when it stops waiting; the call's context
	// ends then, as a gRPC call's does on RST_STREAM.
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		var b [1]byte
		if _, err := conn.Read(b[:]); err != nil {
			cancel()
		}
	}()
	dec := func(v any) error {
		pm, ok := v.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "%T is not a protobuf message", v)
		}
		if err := proto.Unmarshal(msg, pm); err != nil {
			return status.Errorf(codes.InvalidArgument, "decode request: %v", err)
		}
		return nil
	}
	resp, err := m.handler(m.impl, cctx, dec, s.interceptor)
	if err != nil {
		_ = writeResponse(conn, statusOf(cctx, err).Proto(), nil)
	} else if pm, ok := resp.(proto.Message); ok {
		_ = writeResponse(conn, nil, pm)
	} else {
		_ = writeResponse(conn, status.Newf(codes.Internal, "%T is not a protobuf message", resp).Proto(), nil)
	}
	// Release the watcher: the answer is out; its read would otherwise
	// wait for the caller to close.
	_ = conn.SetReadDeadline(time.Now())
	<-watched
}

// statusOf is the status a handler's error is answered with: its own, or
// the context's when the handler only passed that on.
func statusOf(ctx context.Context, err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	if cerr := ctx.Err(); cerr != nil && (err == cerr || err == context.Canceled || err == context.DeadlineExceeded) {
		return status.FromContextError(cerr)
	}
	return status.FromContextError(err) // Unknown with the error's text, as gRPC answers
}

func (s *Server) readRequest(conn net.Conn) (name string, timeout time.Duration, msg []byte, err error) {
	if err := conn.SetReadDeadline(time.Now().Add(s.requestWait)); err != nil {
		return "", 0, nil, err
	}
	var hdr [reqHeader]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return "", 0, nil, fmt.Errorf("read request: %w", err)
	}
	switch {
	case hdr[0] != Magic:
		return "", 0, nil, status.Error(codes.InvalidArgument, "not a short call")
	case hdr[1] != version:
		return "", 0, nil, status.Errorf(codes.Unimplemented, "short call version %d; this end speaks %d", hdr[1], version)
	}
	nameLen := int(binary.BigEndian.Uint16(hdr[2:]))
	ms := binary.BigEndian.Uint32(hdr[4:])
	msgLen := int64(binary.BigEndian.Uint32(hdr[8:]))
	switch {
	case nameLen == 0 || nameLen > maxMethod:
		return "", 0, nil, status.Errorf(codes.InvalidArgument, "method name of %d bytes", nameLen)
	case msgLen > int64(s.maxRecv):
		return "", 0, nil, status.Errorf(codes.ResourceExhausted, "request of %d bytes is larger than the limit of %d", msgLen, s.maxRecv)
	}
	buf := make([]byte, int64(nameLen)+msgLen)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return "", 0, nil, fmt.Errorf("read request: %w", err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return "", 0, nil, err
	}
	return string(buf[:nameLen]), time.Duration(ms) * time.Millisecond, buf[nameLen:], nil
}

// writeResponse writes the answer as one frame: st (nil: OK), then msg.
func writeResponse(w io.Writer, st *spb.Status, msg proto.Message) error {
	var stLen, msgLen int
	if st != nil {
		stLen = proto.Size(st)
	}
	if msg != nil {
		msgLen = proto.Size(msg)
	}
	buf := make([]byte, resHeader, resHeader+stLen+msgLen)
	binary.BigEndian.PutUint32(buf[0:], uint32(stLen))
	binary.BigEndian.PutUint32(buf[4:], uint32(msgLen))
	var err error
	opts := proto.MarshalOptions{UseCachedSize: true}
	if st != nil {
		if buf, err = opts.MarshalAppend(buf, st); err != nil {
			return err
		}
	}
	if msg != nil {
		if buf, err = opts.MarshalAppend(buf, msg); err != nil {
			return err
		}
	}
	_, err = w.Write(buf)
	return err
}

// decodeStatus turns an encoded google.rpc.Status back into its error.
func decodeStatus(b []byte) error {
	var p spb.Status
	if err := proto.Unmarshal(b, &p); err != nil {
		return status.Errorf(codes.Internal, "shortcall: decode status: %v", err)
	}
	if codes.Code(p.GetCode()) == codes.OK {
		return status.Error(codes.Internal, "shortcall: an error answer with status OK")
	}
	return status.ErrorProto(&p)
}
