package apollo

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/fleet"
)

// Apollo's instances are the client processes that read a namespace; here
// they are the nodes that hold its file, in the data center that is their
// server's area (an organization). Which release an instance runs is
// the release last applied to the node's copy of the file.

// defaultInstancePage is Apollo's default size of a page of instances.
const defaultInstancePage = 20

// holders are the nodes that hold ns in the call's cluster: the node of a
// node's cluster, every node of ns's component for default.
func (x *call) holders(ns *namespace) []cluster.Node {
	if x.node != nil {
		return []cluster.Node{*x.node}
	}
	var out []cluster.Node
	for _, n := range x.app.nodes {
		if n.Component == ns.component {
			out = append(out, n)
		}
	}
	return out
}

// instances describes nodes as Apollo's instances of ns, each with the
// release it runs (as run gives it), if one is known.
type instances struct {
	x   *call
	ns  *namespace
	run map[ids.ID]running
	// releases caches the releases read, by id; areas the code of each
	// server's area ("" for none).
	releases map[ids.ID]ReleaseDTO
	areas    map[ids.ID]string
}

// dataCenter is the code of the area (organization) of the node's server,
// or "" when it has none.
func (in *instances) dataCenter(n cluster.Node) (string, error) {
	if n.ServerID.IsZero() {
		return "", nil
	}
	if code, ok := in.areas[n.ServerID]; ok {
		return code, nil
	}
	ctx := in.x.Request().Context()
	code := ""
	srv, err := in.x.s.d.Areas.Server(ctx, n.ServerID)
	switch {
	case errors.Is(err, fleet.ErrServerNotFound):
	case err != nil:
		return "", err
	case !srv.AreaID.IsZero():
		a, err := in.x.s.d.Areas.Area(ctx, srv.AreaID)
		if err != nil && !errors.Is(err, fleet.ErrAreaNotFound) {
			return "", err
		}
		code = a.Code
	}
	in.areas[n.ServerID] = code
	return code, nil
}

func (s *Server) runningOf(x *call, ns *namespace, nodes []cluster.Node) (*instances, error) {
	nodeIDs := make([]ids.ID, len(nodes))
	for i, n := range nodes {
		nodeIDs[i] = n.ID
	}
	run, err := s.d.Releases.Running(x.Request().Context(), ns.layer.ID, nodeIDs)
	if err != nil {
		return nil, err
	}
	return &instances{x: x, ns: ns, run: run, releases: map[ids.ID]ReleaseDTO{}, areas: map[ids.ID]string{}}, nil
}

func (in *instances) dto(n cluster.Node) (InstanceDTO, error) {
	dc, err := in.dataCenter(n)
	if err != nil {
		return InstanceDTO{}, err
	}
	out := InstanceDTO{ID: int64(n.ID), AppID: in.x.app.cluster.Name, ClusterName: n.NodeDir, DataCenter: dc, IP: n.ManagerIP,
		Configs: []InstanceConfigDTO{}, DataChangeCreatedTime: gsonTime(n.CreatedAt)}
	r, ok := in.run[n.ID]
	if !ok {
		return out, nil
	}
	rel, ok := in.releases[r.Release]
	if !ok {
		got, err := in.x.s.d.Releases.Get(in.x.Request().Context(), r.Release)
		if errors.Is(err, errReleaseNotFound) {
			return out, nil // gone with its history: not known any more
		}
		if err != nil {
			return InstanceDTO{}, err
		}
		rel = releaseDTO(in.x.app.cluster.Name, in.ns.name, got)
		in.releases[r.Release] = rel
	}
	out.Configs = append(out.Configs, InstanceConfigDTO{Release: &rel, ReleaseDeliveryTime: gsonTime(r.At), DataChangeLastModifiedTime: gsonTime(r.At)})
	return out, nil
}

// page answers one page of nodes as instances.
func (in *instances) page(nodes []cluster.Node, page, size int) (InstancePageDTO, error) {
	out := InstancePageDTO{Page: page, Size: size, Total: int64(len(nodes)), Instances: []InstanceDTO{}}
	for i := page * size; i < len(nodes) && i < (page+1)*size; i++ {
		d, err := in.dto(nodes[i])
		if err != nil {
			return InstancePageDTO{}, err
		}
		out.Instances = append(out.Instances, d)
	}
	return out, nil
}

func (x *call) instancePage() (page, size int, err error) {
	if page, err = x.intQuery("page", 0, 0, 1<<30); err != nil {
		return 0, 0, err
	}
	size, err = x.intQuery("size", defaultInstancePage, 1, maxPageSize)
	return page, size, err
}

func (s *Server) instancesByRelease(x *call) error {
	rel, err := x.releaseByID("releaseId")
	if err != nil {
		return err
	}
	if err := x.allowed(rel, accessRead); err != nil {
		return err
	}
	page, size, err := x.instancePage()
	if err != nil {
		return err
	}
	ns := x.namespaceOf(rel)
	var nodes []cluster.Node
	for _, n := range x.app.nodes {
		if n.Component == rel.Component {
			nodes = append(nodes, n)
		}
	}
	in, err := s.runningOf(x, ns, nodes)
	if err != nil {
		return err
	}
	var on []cluster.Node
	for _, n := range nodes {
		if r, ok := in.run[n.ID]; ok && r.Release == rel.ID {
			on = append(on, n)
		}
	}
	out, err := in.page(on, page, size)
	if err != nil {
		return err
	}
	return writeJSON(x, http.StatusOK, out)
}

func (s *Server) instancesByNamespace(x *call) error {
	page, size, err := x.instancePage()
	if err != nil {
		return err
	}
	nodes := x.holders(x.ns)
	if a := x.QueryParam("instanceAppId"); a != "" && a != x.app.cluster.Name {
		nodes = nil
	}
	in, err := s.runningOf(x, x.ns, nodes)
	if err != nil {
		return err
	}
	out, err := in.page(nodes, page, size)
	if err != nil {
		return err
	}
	return writeJSON(x, http.StatusOK, out)
}

func (s *Server) instancesNotIn(x *call) error {
	exclude := map[ids.ID]bool{}
	for _, f := range strings.Split(x.QueryParam("releaseIds"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return badRequest("releaseIds should be comma separated numbers, got %q", truncate(f, 32))
		}
		exclude[ids.ID(n)] = true
	}
	if len(exclude) == 0 {
		return badRequest("releaseIds should not be empty")
	}
	nodes := x.holders(x.ns)
	in, err := s.runningOf(x, x.ns, nodes)
	if err != nil {
		return err
	}
	out := []InstanceDTO{}
	for _, n := range nodes {
		if r, ok := in.run[n.ID]; ok && exclude[r.Release] {
			continue
		}
		d, err := in.dto(n)
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	return writeJSON(x, http.StatusOK, out)
}
