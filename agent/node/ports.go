package node

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/admq/admq-manager/internal/invalid"
)

// MaxFreeAddrs bounds DeployRequest.FreeAddrs.
const MaxFreeAddrs = 16

// AddrError says that a TCP address a node is to listen on cannot be
// listened on by this server now. Err is what listening said:
// syscall.EADDRINUSE when another process listens there,
// syscall.EADDRNOTAVAIL when the IP is not one of this server's.
type AddrError struct {
	Addr string
	Err  error
}

func (e *AddrError) Error() string {
	host, _, _ := net.SplitHostPort(e.Addr)
	var errno syscall.Errno
	switch {
	case errors.Is(e.Err, syscall.EADDRINUSE):
		return fmt.Sprintf("%s is already in use on this server (%v); another process listens there", e.Addr, syscall.EADDRINUSE)
	case errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("%s is not an address of this server (%v), so nothing can listen on %s", host, syscall.EADDRNOTAVAIL, e.Addr)
	case errors.As(e.Err, &errno):
		return fmt.Sprintf("cannot listen on %s on this server (%v)", e.Addr, errno)
	}
	return fmt.Sprintf("cannot listen on %s on this server: %v", e.Addr, e.Err)
}

func (e *AddrError) Unwrap() error { return e.Err }

// checkFreeAddr validates one of DeployRequest.FreeAddrs: an IP literal
// (or no host, for every address) and a port from 1 to 65535. Host names
// are refused: the agent would resolve them, perhaps not as the node does.
func checkFreeAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return invalid.Field("free_addrs", "%q: want ip:port", a)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return invalid.Field("free_addrs", "%q: %q is not an IP address", a, host)
		}
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return invalid.Field("free_addrs", "%q: port %q: want 1 to 65535", a, port)
	}
	return nil
}

// checkFree listens on each TCP address and closes the listener at once, so
// that a node is not started onto a port another process holds (it would
// die with a bind error, or a TCP health check would pass against the
// other process). Every address that cannot be listened on is an
// *AddrError; they are joined.
//
// The check is the same bind the node will make: Go listeners set
// SO_REUSEADDR, as servers do, so a port left in TIME_WAIT counts as free,
// and a wildcard listener of another process counts as holding every
// address.
func checkFree(addrs []string) error {
	var errs []error
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			errs = append(errs, &AddrError{Addr: a, Err: err})
			continue
		}
		_ = l.Close()
	}
	return errors.Join(errs...)
}
