package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// inetSocket is one line of /proc/net/{tcp,tcp6,udp,udp6}.
type inetSocket struct {
	proto      string // tcp, tcp6, udp, udp6
	local      string // hex address:port as the kernel prints it
	remote     string
	localPort  int
	remotePort int
	state      string // hex; for tcp 01 is ESTABLISHED, 0A is LISTEN
	inode      string
}

func (s inetSocket) String() string {
	return fmt.Sprintf("%s local=%s(:%d) remote=%s(:%d) st=%s inode=%s", s.proto, s.local, s.localPort, s.remote, s.remotePort, s.state, s.inode)
}

const (
	tcpEstablished = "01"
	tcpListen      = "0A"
)

// socketInodes returns the inodes of the sockets pid holds open.
func socketInodes(pid int) (map[string]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	inodes := make(map[string]bool)
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if in, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(in, "]")] = true
		}
	}
	return inodes, nil
}

// inetSockets reads the kernel's IPv4 and IPv6 TCP and UDP socket tables.
func inetSockets() ([]inetSocket, error) {
	var all []inetSocket
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open("/proc/net/" + proto)
		if os.IsNotExist(err) && strings.HasSuffix(proto, "6") {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			s := inetSocket{proto: proto, local: fields[1], remote: fields[2], state: fields[3], inode: fields[9]}
			s.localPort = hexPort(s.local)
			s.remotePort = hexPort(s.remote)
			all = append(all, s)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read /proc/net/%s: %w", proto, err)
		}
	}
	return all, nil
}

func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return -1
	}
	p, err := strconv.ParseUint(addr[i+1:], 16, 16)
	if err != nil {
		return -1
	}
	return int(p)
}

// processSockets returns the TCP and UDP sockets that pid holds.
func processSockets(pid int) ([]inetSocket, error) {
	inodes, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	all, err := inetSockets()
	if err != nil {
		return nil, err
	}
	var mine []inetSocket
	for _, s := range all {
		if inodes[s.inode] {
			mine = append(mine, s)
		}
	}
	return mine, nil
}
