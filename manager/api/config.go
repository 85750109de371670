package api

import (
	"context"
	"errors"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
)

func (a *API) configs() (*config.Service, error) {
	if a.d.Config == nil {
		return nil, errors.New("api: no config service configured")
	}
	return a.d.Config, nil
}

// itemFields names config's fields as the console's requests do.
var itemFields = map[string]string{"key": "configKey", "value": "configValue", "comment": "describes", "items": "ids", "file": "fileMap"}

// consoleFields renames the field of a config validation error to the
// console's name for it.
func consoleFields(err error) error {
	if e, ok := invalid.As(err); ok {
		if name, ok := itemFields[e.Field]; ok {
			return &invalid.Error{Field: name, Reason: e.Reason}
		}
	}
	return err
}

type configFileView struct {
	ID         ids.ID  `json:"id"`
	CreateTime apiTime `json:"createTime"`
	UpdateTime apiTime `json:"updateTime"`
	NodeID     ids.ID  `json:"nodeId"`
	// ClusterFileID is the cluster layer this node file overlays.
	ClusterFileID ids.ID `json:"clusterFileId"`
	Name          string `json:"name"`
	Path          string `json:"path"`   // in the package
	Format        string `json:"format"` // properties or raw
	// Target is where the file is written on the node: relative to its
	// programDir, or absolute in its dataDir.
	Target string `json:"target"`
}

func toConfigFileView(f config.NodeFile) configFileView {
	return configFileView{ID: f.ID, CreateTime: apiTime(f.CreatedAt), UpdateTime: apiTime(f.UpdatedAt), NodeID: f.NodeID,
		ClusterFileID: f.FileID, Name: f.Name, Path: f.Path, Format: f.Format, Target: f.Target}
}

// clusterFileView is the cluster layer of a config file.
type clusterFileView struct {
	ID         ids.ID  `json:"id"`
	CreateTime apiTime `json:"createTime"`
	UpdateTime apiTime `json:"updateTime"`
	ClusterID  ids.ID  `json:"clusterId"`
	Component  string  `json:"component"`
	Name       string  `json:"name"`
	Path       string  `json:"path"`   // in the package
	Format     string  `json:"format"` // properties or raw
	// Target is where nodes get the file: a path under their programDir,
	// or "{programDir}/…" or "{dataDir}/…".
	Target    string `json:"target"`
	PackageID ids.ID `json:"packageId"`
}

func toClusterFileView(f config.File) clusterFileView {
	return clusterFileView{ID: f.ID, CreateTime: apiTime(f.CreatedAt), UpdateTime: apiTime(f.UpdatedAt), ClusterID: f.ClusterID,
		Component: f.Component, Name: f.Name, Path: f.Path, Format: f.Format, Target: f.Target, PackageID: f.PackageID}
}

// configItemView is a config item as the seed shows it (2.3.0.5), with
// where a node's item comes from.
type configItemView struct {
	ID          ids.ID  `json:"id"`
	CreateTime  apiTime `json:"createTime"`
	UpdateTime  apiTime `json:"updateTime"`
	ConfigKey   string  `json:"configKey"`
	ConfigValue string  `json:"configValue"`
	Effective   int     `json:"effective"` // 1 enabled, 0 disabled
	Describes   string  `json:"describes"`
	// CreateUser and UpdateUser name who added the item and who last
	// changed it: a console user, or the operator of an Open API call; for
	// a key that came with the package, the console user who created the
	// cluster or added the nodes, or config.ImportAuthor when a manager
	// older than that record imported it.
	CreateUser string `json:"createUser"`
	UpdateUser string `json:"updateUser"`
	// Source is "cluster" when a node's item is the cluster layer's as it
	// is, "node" when the node overrides its value or on/off, or the key
	// is the node's own; a cluster layer's items say "cluster".
	Source string `json:"source"`
	// ClusterItemID is the cluster layer's item a node's item mirrors
	// (null for a key of the node's own or a layer's item).
	ClusterItemID ids.ID `json:"clusterItemId"`
}

func toItemView(it config.Item) configItemView {
	return configItemView{ID: it.ID, CreateTime: apiTime(it.CreatedAt), UpdateTime: apiTime(it.UpdatedAt),
		ConfigKey: it.Key, ConfigValue: it.Value, Effective: boolInt(it.Effective), Describes: it.Comment,
		CreateUser: config.Author(it.CreatedBy), UpdateUser: config.Author(it.UpdatedBy), Source: config.SourceCluster}
}

func toNodeItemView(it config.NodeItem) configItemView {
	return configItemView{ID: it.ID, CreateTime: apiTime(it.CreatedAt), UpdateTime: apiTime(it.UpdatedAt),
		ConfigKey: it.Key, ConfigValue: it.Value, Effective: boolInt(it.Effective), Describes: it.Comment,
		CreateUser: config.Author(it.CreatedBy), UpdateUser: config.Author(it.UpdatedBy), Source: it.Source(), ClusterItemID: it.ItemID}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (a *API) listNodeConfigFiles(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	var exists func(context.Context, ids.ID) error
	if a.d.Clusters != nil {
		exists = func(ctx context.Context, id ids.ID) error { _, err := a.d.Clusters.Node(ctx, id); return err }
	}
	return listFiles(c, "nodeId", exists, svc.NodeFiles, toConfigFileView)
}

// listFiles serves the config files of the node or cluster whose id is
// the query parameter param: exists, when given, must find it; list reads
// its files.
func listFiles[T, V any](c echo.Context, param string, exists func(context.Context, ids.ID) error,
	list func(context.Context, ids.ID) ([]T, error), view func(T) V) error {
	id, err := requiredID(c, param)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if exists != nil {
		if err := exists(ctx, id); err != nil {
			return err
		}
	}
	files, err := list(ctx, id)
	if err != nil {
		return err
	}
	views := make([]V, len(files))
	for i, f := range files {
		views[i] = view(f)
	}
	return ok(c, views)
}

// listConfigItems serves a page of a node file's items, kept encoded
// while the file's ItemsVersion stays the same.
func (a *API) listConfigItems(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	fid, err := requiredID(c, "configFileId")
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	before, err := svc.NodeFile(ctx, fid)
	if err != nil {
		return err
	}
	key := itemPageKey{file: fid, version: before.ItemsVersion, num: p.Num, size: p.Size}
	if body, ok := a.lists.items.Get(key); ok {
		return writeJSON(c, body)
	}
	items, total, err := svc.NodeItems(ctx, fid, p)
	if err != nil {
		return err
	}
	views := make([]configItemView, len(items))
	for i, it := range items {
		views[i] = toNodeItemView(it)
	}
	body, err := encodeOK(newPage(p, total, views))
	if err != nil {
		return err
	}
	// Kept only when no write came between the two reads of the version:
	// the page is then the items at that version.
	if after, err := svc.NodeFile(ctx, fid); err == nil && after.ItemsVersion == before.ItemsVersion {
		a.lists.items.Add(key, body)
	}
	return writeJSON(c, body)
}

// listItems serves a page of the items of the file ?configFileId= that
// list reads.
func listItems[T any](c echo.Context, list func(context.Context, ids.ID, paging.Page) ([]T, int, error), view func(T) configItemView) error {
	fid, err := requiredID(c, "configFileId")
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	items, total, err := list(c.Request().Context(), fid, p)
	if err != nil {
		return err
	}
	views := make([]configItemView, len(items))
	for i, it := range items {
		views[i] = view(it)
	}
	return ok(c, newPage(p, total, views))
}

// configItemRequest adds an item to nodes' config files (seed 2.3.0.6):
// every file of fileMap (by id; the names are the console's and not
// used) and configFileId.
type configItemRequest struct {
	FileMap      map[string]string `json:"fileMap,omitempty"`
	ConfigFileID ids.ID            `json:"configFileId"`
	// Cid, when given, is the cluster the files' nodes must belong to.
	Cid         ids.ID  `json:"cid,omitempty"`
	Total       int     `json:"total,omitempty"`
	ConfigKey   string  `json:"configKey"`
	ConfigValue *string `json:"configValue"`
	Describes   string  `json:"describes,omitempty"`
}

// checkNewItem refuses a new item without its file or its value.
func checkNewItem(file ids.ID, value *string) error {
	switch {
	case file.IsZero():
		return invalid.Field("configFileId", "is required")
	case value == nil:
		return invalid.Field("configValue", "is required (may be empty)")
	}
	return nil
}

func (a *API) addConfigItem(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	var r configItemRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if err := checkNewItem(r.ConfigFileID, r.ConfigValue); err != nil {
		return err
	}
	files := []ids.ID{r.ConfigFileID}
	for k := range r.FileMap {
		id, err := ids.Parse(k)
		if err != nil {
			return invalid.Field("fileMap", "%q: %v", truncate(k, 32), err)
		}
		if id != r.ConfigFileID {
			files = append(files, id)
		}
	}
	ctx := c.Request().Context()
	detail(c, "configFile=%s files=%d key=%q", r.ConfigFileID, len(files), truncate(r.ConfigKey, 128))
	if !r.Cid.IsZero() && a.d.Clusters != nil {
		for _, id := range files {
			f, err := svc.NodeFile(ctx, id)
			if err != nil {
				return err
			}
			n, err := a.d.Clusters.Node(ctx, f.NodeID)
			if err != nil {
				return err
			}
			if n.ClusterID != r.Cid {
				return invalid.Field("cid", "config file %s belongs to cluster %s, not %s", f.ID, n.ClusterID, r.Cid)
			}
		}
	}
	items, err := svc.AddNodeItem(ctx, files, config.NewItem{Key: r.ConfigKey, Value: *r.ConfigValue, Comment: r.Describes, By: userOf(c).Username})
	if err != nil {
		return consoleFields(err)
	}
	detail(c, "configFile=%s files=%d key=%q item=%s", r.ConfigFileID, len(items), truncate(items[0].Key, 128), items[0].ID)
	return ok(c, toNodeItemView(items[0]))
}

// configItemUpdate changes an item's value or description; absent fields
// are left as they are.
type configItemUpdate struct {
	ID          ids.ID  `json:"id"`
	ConfigValue *string `json:"configValue,omitempty"`
	Describes   *string `json:"describes,omitempty"`
}

func (a *API) updateNodeConfigItem(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	return updateItem(c, "item", svc.UpdateNodeItem, func(it config.NodeItem) (string, configItemView) {
		return sprintf("key=%q source=%s", truncate(it.Key, 128), it.Source()), toNodeItemView(it)
	})
}

// updateItem serves a change of one item's value or description, which
// update makes; done says how the audit log names the changed item and
// how it is shown. label names the item in the audit log.
func updateItem[T any](c echo.Context, label string, update func(context.Context, ids.ID, config.Change) (T, error),
	done func(T) (string, configItemView)) error {
	var r configItemUpdate
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.ID.IsZero() {
		return invalid.Field("id", "is required")
	}
	detail(c, "%s=%s", label, r.ID)
	it, err := update(c.Request().Context(), r.ID, config.Change{Value: r.ConfigValue, Comment: r.Describes, By: userOf(c).Username})
	if err != nil {
		return consoleFields(err)
	}
	what, v := done(it)
	detail(c, "%s=%s %s", label, r.ID, what)
	return ok(c, v)
}

func (a *API) resetNodeConfigItem(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	return removeItem(c, "item", svc.ResetNodeItem)
}

// removeItem serves the removal (or reset) of the item ?id=, which
// remove makes as the console user; label names the item in the audit
// log.
func removeItem(c echo.Context, label string, remove func(ctx context.Context, id ids.ID, by string) error) error {
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "%s=%s", label, id)
	return consoleFields(okOrErr(c, remove(c.Request().Context(), id, userOf(c).Username)))
}

func okOrErr(c echo.Context, err error) error {
	if err != nil {
		return err
	}
	return ok(c, nil)
}

// itemStatusRequest enables or disables one item (seed 2.3.0.7).
type itemStatusRequest struct {
	ID ids.ID `json:"id"`
	// Effective is 1 to enable the item, 0 to disable it.
	Effective *int `json:"effective"`
}

// itemsStatusRequest enables or disables items at once (seed 2.3.0.8).
type itemsStatusRequest struct {
	IDs       []ids.ID `json:"ids"`
	Effective *int     `json:"effective"`
}

func effectiveOf(e *int) (bool, error) {
	switch {
	case e == nil:
		return false, invalid.Field("effective", "is required: 1 to enable, 0 to disable")
	case *e != 0 && *e != 1:
		return false, invalid.Field("effective", "must be 1 (enabled) or 0 (disabled)")
	}
	return *e == 1, nil
}

// setStatus serves the single and batch status routes of nodes' and the
// cluster layer's items with set.
func (a *API) setStatus(c echo.Context, batch bool, set func(svc *config.Service, ids []ids.ID, eff bool, by string) error) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	var (
		list []ids.ID
		e    *int
	)
	if batch {
		var r itemsStatusRequest
		if err := decode(c, &r); err != nil {
			return err
		}
		list, e = r.IDs, r.Effective
	} else {
		var r itemStatusRequest
		if err := decode(c, &r); err != nil {
			return err
		}
		if r.ID.IsZero() {
			return invalid.Field("id", "is required")
		}
		list, e = []ids.ID{r.ID}, r.Effective
	}
	eff, err := effectiveOf(e)
	if err != nil {
		return err
	}
	detail(c, "items=%d effective=%d", len(list), boolInt(eff))
	return consoleFields(okOrErr(c, set(svc, list, eff, userOf(c).Username)))
}

func (a *API) setConfigItemStatus(c echo.Context) error {
	return a.setStatus(c, false, func(svc *config.Service, l []ids.ID, eff bool, by string) error {
		return svc.SetNodeItemsEffective(c.Request().Context(), l, eff, by)
	})
}

func (a *API) setConfigItemsStatus(c echo.Context) error {
	return a.setStatus(c, true, func(svc *config.Service, l []ids.ID, eff bool, by string) error {
		return svc.SetNodeItemsEffective(c.Request().Context(), l, eff, by)
	})
}

func (a *API) setClusterItemStatus(c echo.Context) error {
	return a.setStatus(c, false, func(svc *config.Service, l []ids.ID, eff bool, by string) error {
		return svc.SetItemsEffective(c.Request().Context(), l, eff, by)
	})
}

func (a *API) setClusterItemsStatus(c echo.Context) error {
	return a.setStatus(c, true, func(svc *config.Service, l []ids.ID, eff bool, by string) error {
		return svc.SetItemsEffective(c.Request().Context(), l, eff, by)
	})
}

func (a *API) listClusterConfigFiles(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	var exists func(context.Context, ids.ID) error
	if a.d.Clusters != nil {
		exists = func(ctx context.Context, id ids.ID) error { _, err := a.d.Clusters.Cluster(ctx, id); return err }
	}
	return listFiles(c, "clusterId", exists, svc.Files, toClusterFileView)
}

func (a *API) listClusterConfigItems(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	return listItems(c, svc.Items, toItemView)
}

// clusterItemRequest adds a key to a file's cluster layer.
type clusterItemRequest struct {
	// ConfigFileID is the cluster layer's file (clusterFileId of a node's
	// file, id in /cluster/config/file).
	ConfigFileID ids.ID  `json:"configFileId"`
	ConfigKey    string  `json:"configKey"`
	ConfigValue  *string `json:"configValue"`
	Describes    string  `json:"describes,omitempty"`
}

func (a *API) addClusterConfigItem(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	var r clusterItemRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if err := checkNewItem(r.ConfigFileID, r.ConfigValue); err != nil {
		return err
	}
	detail(c, "clusterFile=%s key=%q", r.ConfigFileID, truncate(r.ConfigKey, 128))
	it, err := svc.AddItem(c.Request().Context(), r.ConfigFileID, config.NewItem{Key: r.ConfigKey, Value: *r.ConfigValue, Comment: r.Describes,
		By: userOf(c).Username})
	if err != nil {
		return consoleFields(err)
	}
	detail(c, "clusterFile=%s key=%q item=%s", r.ConfigFileID, truncate(it.Key, 128), it.ID)
	return ok(c, toItemView(it))
}

func (a *API) updateClusterConfigItem(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	return updateItem(c, "clusterItem", svc.UpdateItem, func(it config.Item) (string, configItemView) {
		return sprintf("key=%q", truncate(it.Key, 128)), toItemView(it)
	})
}

func (a *API) deleteClusterConfigItem(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	return removeItem(c, "clusterItem", svc.DeleteItem)
}
