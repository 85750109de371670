package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/manifest"
)

// Coordinator is the component whose nodes make {zkServers} and
// {zkEnsemble}: the cluster's ZooKeeper ensemble.
const Coordinator = "coordinator"

// ZooKeeper's quorum and leader-election ports are derived from a
// coordinator's client port (its serverPort) so that the defaults come out
// as ZooKeeper's (2181 → 2888 and 3888) and two ensembles on one host that
// differ in client port do not clash in the others.
const (
	QuorumPortOffset   = 2888 - 2181
	ElectionPortOffset = 3888 - 2181
)

// Member is what rendering knows of a node: where it is placed.
type Member struct {
	ID        ids.ID
	PackageID ids.ID
	Component string
	// Ordinal counts from 1 per component in the cluster; a coordinator's
	// is its ZooKeeper myid.
	Ordinal int
	// NodeDir is "<component>-<ordinal>", the node's name.
	NodeDir    string
	ProgramDir string
	DataDir    string
	ManagerIP  string
	// DataIP is the server's data address; empty: ManagerIP.
	DataIP     string
	ServerPort int
}

// Addr is the member's data address: DataIP, else ManagerIP.
func (m Member) Addr() string {
	if m.DataIP != "" {
		return m.DataIP
	}
	return m.ManagerIP
}

// Topology is a cluster as rendering sees it: its name and every node.
type Topology struct {
	ClusterID ids.ID
	Cluster   string
	Members   []Member
}

// Member returns the member with id.
func (t Topology) Member(id ids.ID) (Member, bool) {
	for _, m := range t.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// Vars are the values of manifest.Variables for one node.
type Vars map[string]string

// VarsFor returns the variables of node n of the cluster t: {cluster}
// {node} and {nodeDir} ("<component>-<ordinal>") {component} {programDir}
// {dataDir} {managerIp} {dataIp} (the manager IP when the server has none)
// {serverPort} {myid} (the ordinal); from the cluster's coordinators, by
// ordinal: {zkServers}, "dataIp:serverPort" joined by commas, and
// {zkEnsemble}, one "server.<myid>=dataIp:quorum:election" line each, the
// ports being serverPort+QuorumPortOffset and serverPort+ElectionPortOffset;
// and {peers}: every node of n's component, n included, by ordinal, each
// written with peer (the manifest component's Peer, filled in with that
// node's variables) or, when peer is empty, as dataIp:serverPort, joined
// by ", ".
func VarsFor(t Topology, n Member, peer string) (Vars, error) {
	var coords, peers []Member
	for _, m := range t.Members {
		if m.Component == Coordinator {
			coords = append(coords, m)
		}
		if m.Component == n.Component {
			peers = append(peers, m)
		}
	}
	byOrdinal := func(a, b Member) int { return a.Ordinal - b.Ordinal }
	slices.SortFunc(coords, byOrdinal)
	slices.SortFunc(peers, byOrdinal)
	var servers, ensemble []string
	for _, m := range coords {
		ip := m.Addr()
		servers = append(servers, net.JoinHostPort(ip, strconv.Itoa(m.ServerPort)))
		q, e := m.ServerPort+QuorumPortOffset, m.ServerPort+ElectionPortOffset
		if q < 1 || e > 65535 {
			return nil, fmt.Errorf("%w: coordinator %s has client port %d, which leaves no room for its quorum port %d and election port %d",
				ErrRender, m.NodeDir, m.ServerPort, q, e)
		}
		ensemble = append(ensemble, fmt.Sprintf("server.%d=%s:%d", m.Ordinal, net.JoinHostPort(ip, strconv.Itoa(q)), e))
	}
	zkServers, zkEnsemble := strings.Join(servers, ","), strings.Join(ensemble, "\n")
	if peer != "" {
		// The manifest refuses a peer template with {peers}, which would
		// hold the list being made; a stored package is checked again here.
		if refs, err := manifest.Refs(peer); err != nil {
			return nil, fmt.Errorf("%w: peer template %q: %v", ErrRender, peer, err)
		} else if slices.Contains(refs, "peers") {
			return nil, fmt.Errorf("%w: peer template %q: a peer may not use {peers}", ErrRender, peer)
		}
	}
	list := make([]string, 0, len(peers))
	for _, m := range peers {
		if peer == "" {
			list = append(list, net.JoinHostPort(m.Addr(), strconv.Itoa(m.ServerPort)))
			continue
		}
		p, err := manifest.Expand(peer, memberVars(t, m, zkServers, zkEnsemble))
		if err != nil {
			return nil, fmt.Errorf("%w: peer template %q for %s: %v", ErrRender, peer, m.NodeDir, err)
		}
		list = append(list, p)
	}
	v := memberVars(t, n, zkServers, zkEnsemble)
	v["peers"] = strings.Join(list, ", ")
	return v, nil
}

// memberVars are the variables of node n but {peers}.
func memberVars(t Topology, n Member, zkServers, zkEnsemble string) Vars {
	return Vars{
		"cluster":    t.Cluster,
		"node":       n.NodeDir,
		"component":  n.Component,
		"nodeDir":    n.NodeDir,
		"programDir": n.ProgramDir,
		"dataDir":    n.DataDir,
		"managerIp":  n.ManagerIP,
		"dataIp":     n.Addr(),
		"serverPort": strconv.Itoa(n.ServerPort),
		"myid":       strconv.Itoa(n.Ordinal),
		"zkServers":  zkServers,
		"zkEnsemble": zkEnsemble,
	}
}
