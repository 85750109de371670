package apollo

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/admq/admq-manager/manager/config"
)

// Apollo's limits on what an item may hold.
const (
	MaxKeyLen     = 128
	MaxValueLen   = 20000
	MaxCommentLen = 256
	// maxBatch caps the items of one batch call.
	maxBatch = 1000
	// maxPageSize caps the size of an items page.
	maxPageSize = 10000
)

// rawKey is the key of the one item of a txt (raw) namespace.
const rawKey = "content"

// item is one key of a namespace as one Apollo cluster sees it.
type item struct {
	Key, Value, Comment  string
	CreatedAt, UpdatedAt time.Time
	// CreatedBy and UpdatedBy name the console user or Open API operator
	// who added the key and who last changed it ("" when unknown).
	CreatedBy, UpdatedBy string
}

// errItemExists and errItemNotFound are what an items model returns when
// a key is there, or not, against the caller's wish.
var (
	errItemExists   = errors.New("item already exists")
	errItemNotFound = errors.New("item not found")
)

// itemChange is one change of a batch: a key to set (create or update) or
// to delete.
type itemChange struct {
	item   item
	delete bool
	// create: the key must not be there; else it must (unless upsert).
	create, upsert bool
}

// Items is the configuration model as the Open API edits it: the items of
// one namespace (a config file) as one cluster (the cluster-wide layer,
// or one node) sees them.
type Items interface {
	// List returns the namespace's items in the cluster, in file order.
	List(ctx context.Context, t Target) ([]item, error)
	// Apply makes every change or none (errItemExists, errItemNotFound
	// or bad input naming the key), recording the operator by as the
	// author of each.
	Apply(ctx context.Context, t Target, by string, changes []itemChange) error
}

// itemDTO is the item at index i of its namespace's List: its lineNum is
// i+1. An item whose author was not recorded names config.ImportAuthor.
func itemDTO(it item, i int) ItemDTO {
	return ItemDTO{Key: it.Key, Value: it.Value, Comment: it.Comment, LineNum: i + 1,
		baseDTO: base(config.Author(it.CreatedBy), config.Author(it.UpdatedBy), it.CreatedAt, it.UpdatedAt)}
}

// itemKey reads the key of an items/{key} or encodedItems/{key} path.
func (x *call) itemKey() (string, error) {
	key, err := x.param("key")
	if err != nil {
		return "", err
	}
	if strings.Contains(x.Path(), "/encodedItems/") {
		return decodeKey(key)
	}
	return key, nil
}

// checkItem applies Apollo's checks to an item a client sends.
func (x *call) checkItem(r itemRequest) (item, error) {
	if r.Key == nil || strings.TrimSpace(*r.Key) == "" {
		return item{}, badRequest("key should not be null or empty")
	}
	if r.Value == nil {
		return item{}, badRequest("value should not be null")
	}
	it := item{Key: *r.Key, Value: *r.Value, Comment: r.Comment}
	switch {
	case utf8.RuneCountInString(it.Key) > MaxKeyLen:
		return item{}, badRequest("key too long: %d characters, at most %d", utf8.RuneCountInString(it.Key), MaxKeyLen)
	case utf8.RuneCountInString(it.Value) > MaxValueLen:
		return item{}, badRequest("value too long: %d characters, at most %d", utf8.RuneCountInString(it.Value), MaxValueLen)
	case utf8.RuneCountInString(it.Comment) > MaxCommentLen:
		return item{}, badRequest("Comment length should not exceed %d characters", MaxCommentLen)
	case !x.ns.isProperties() && it.Key != rawKey:
		return item{}, badRequest("namespace %s is a %s file: its one item is %q", x.ns.name, x.ns.format, rawKey)
	}
	return it, nil
}

// findItem returns the DTO of the item with key, or a 404.
func (s *Server) findItem(x *call, key string) (ItemDTO, error) {
	items, err := s.d.Items.List(x.Request().Context(), x.target())
	if err != nil {
		return ItemDTO{}, err
	}
	for i, it := range items {
		if it.Key == key {
			return itemDTO(it, i), nil
		}
	}
	return ItemDTO{}, notFound("item not found for key %s in namespace %s of cluster %s", truncate(key, 128), x.ns.name, x.clusterName())
}

func (s *Server) getItem(x *call) error {
	key, err := x.itemKey()
	if err != nil {
		return err
	}
	it, err := s.findItem(x, key)
	if err != nil {
		return err
	}
	return writeJSON(x, http.StatusOK, it)
}

func (s *Server) listItems(x *call) error {
	page, err := x.intQuery("page", 0, 0, 1<<30)
	if err != nil {
		return err
	}
	size, err := x.intQuery("size", 50, 1, maxPageSize)
	if err != nil {
		return err
	}
	items, err := s.d.Items.List(x.Request().Context(), x.target())
	if err != nil {
		return err
	}
	out := ItemPageDTO{Page: page, Size: size, Total: int64(len(items)), Content: []ItemDTO{}}
	for i := page * size; i < len(items) && i < (page+1)*size; i++ {
		out.Content = append(out.Content, itemDTO(items[i], i))
	}
	return writeJSON(x, http.StatusOK, out)
}

func (s *Server) createItem(x *call) error {
	var r itemRequest
	if ok, err := x.decode(&r); err != nil {
		return err
	} else if !ok {
		return badRequest("item payload can not be empty")
	}
	it, err := x.checkItem(r)
	if err != nil {
		return err
	}
	if err := x.resolveOperator(r.DataChangeCreatedBy); err != nil {
		return err
	}
	x.detail("create %s", truncate(it.Key, 128))
	if err := s.edit(x, []itemChange{{item: it, create: true}}); err != nil {
		return err
	}
	got, err := s.findItem(x, it.Key)
	if err != nil {
		return err
	}
	return writeJSON(x, http.StatusOK, got)
}

func (s *Server) updateItem(x *call) error {
	key, err := x.itemKey()
	if err != nil {
		return err
	}
	upsert, err := x.boolQuery("createIfNotExists")
	if err != nil {
		return err
	}
	var r itemRequest
	if ok, err := x.decode(&r); err != nil {
		return err
	} else if !ok {
		return badRequest("item payload can not be empty")
	}
	it, err := x.checkItem(r)
	if err != nil {
		return err
	}
	if it.Key != key {
		return badRequest("Key in path and payload is not consistent: %q in the path, %q in the body", truncate(key, 128), truncate(it.Key, 128))
	}
	op := r.DataChangeLastModifiedBy
	if upsert && strings.TrimSpace(op) == "" {
		op = r.DataChangeCreatedBy
	}
	if err := x.resolveOperator(op); err != nil {
		return err
	}
	x.detail("update %s", truncate(key, 128))
	if err := s.edit(x, []itemChange{{item: it, upsert: upsert}}); err != nil {
		return err
	}
	return writeEmpty(x)
}

func (s *Server) deleteItem(x *call) error {
	key, err := x.itemKey()
	if err != nil {
		return err
	}
	if err := x.resolveOperator(""); err != nil {
		return err
	}
	x.detail("delete %s", truncate(key, 128))
	if err := s.edit(x, []itemChange{{item: item{Key: key}, delete: true}}); err != nil {
		return err
	}
	return writeEmpty(x)
}

// batchOperator is the operator of a batch: ?operator=, or the one every
// item names.
func (x *call) batchOperator(items []itemRequest, pick func(itemRequest) string) error {
	var op string
	if strings.TrimSpace(x.QueryParam("operator")) == "" {
		for i, r := range items {
			switch o := pick(r); {
			case strings.TrimSpace(o) == "":
				return badRequest("item %d names no operator: give ?operator= or name one in every item", i)
			case op != "" && o != op:
				return badRequest("items name two operators, %s and %s: a batch has one", truncate(op, 64), truncate(o, 64))
			default:
				op = o
			}
		}
	}
	return x.resolveOperator(op)
}

func (s *Server) batchItems(x *call) error {
	var rs []itemRequest
	if ok, err := x.decode(&rs); err != nil {
		return err
	} else if !ok || len(rs) == 0 {
		return badRequest("give a JSON list of at least one item")
	}
	if len(rs) > maxBatch {
		return badRequest("at most %d items at once", maxBatch)
	}
	kind := x.Path()[strings.LastIndex(x.Path(), "/batch-")+len("/batch-"):]
	upsert, err := x.boolQuery("createIfNotExists")
	if err != nil {
		return err
	}
	changes := make([]itemChange, 0, len(rs))
	seen := map[string]bool{}
	for i, r := range rs {
		var it item
		if kind == "delete" {
			if r.Key == nil || *r.Key == "" {
				return badRequest("item %d: key should not be null or empty", i)
			}
			it = item{Key: *r.Key}
		} else if it, err = x.checkItem(r); err != nil {
			return badRequest("item %d: %s", i, err.Error())
		}
		if seen[it.Key] {
			return badRequest("item %d: key %s is given twice", i, truncate(it.Key, 128))
		}
		seen[it.Key] = true
		changes = append(changes, itemChange{item: it, delete: kind == "delete", create: kind == "create", upsert: kind == "update" && upsert})
	}
	pick := func(r itemRequest) string { return r.DataChangeLastModifiedBy }
	if kind == "create" {
		pick = func(r itemRequest) string { return r.DataChangeCreatedBy }
	}
	if kind == "delete" {
		pick = func(itemRequest) string { return "" }
	}
	if err := x.batchOperator(rs, pick); err != nil {
		return err
	}
	x.detail("batch-%s of %d items", kind, len(changes))
	if err := s.edit(x, changes); err != nil {
		return err
	}
	return writeEmpty(x)
}

// edit applies changes to the call's namespace under Apollo's lock rule.
func (s *Server) edit(x *call, changes []itemChange) error {
	if err := x.acquireLock(); err != nil {
		return err
	}
	err := s.d.Items.Apply(x.Request().Context(), x.target(), x.operator, changes)
	switch {
	case errors.Is(err, errItemExists):
		return badRequest("%v", err)
	case errors.Is(err, errItemNotFound):
		return notFound("%v", err)
	}
	return err
}
