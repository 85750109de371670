package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

// Lists at fleet size (GET /server over 10,000 servers, a node file of
// 1,000 items) answer from what they encoded before, as long as the
// store's versions say the data has not changed: the versions are kept by
// triggers in the writing transactions, so a list read after a write
// returned always sees it. A server's live fields (agent status and last
// seen time from the presence tracker, collector status, and the clusters
// on it, which the store keeps by their own generation) come with the
// page's stamps at every request and are spliced in. The bytes are those
// encoding/json writes for
// the same views (TestServerListBytes, TestServerListSeesWrites,
// TestNodeItemListSeesWrites).

const (
	// serverRowsKept bounds the encoded servers kept: 20 pages of 100,
	// about 2 MB.
	serverRowsKept = 2048
	// itemPagesKept bounds the encoded pages of node config items kept
	// (about 30 KB for 100 items).
	itemPagesKept = 64
)

// listCaches are the encoded entries the lists reuse.
type listCaches struct {
	servers *lru.Cache[ids.ID, *encodedServer]
	items   *lru.Cache[itemPageKey, []byte]
}

func newListCaches() listCaches {
	servers, err := lru.New[ids.ID, *encodedServer](serverRowsKept)
	if err != nil {
		panic(err) // only for a size < 1
	}
	items, err := lru.New[itemPageKey, []byte](itemPagesKept)
	if err != nil {
		panic(err)
	}
	return listCaches{servers: servers, items: items}
}

// encodedServer is a server's list entry as encoding/json writes its
// serverView, cut around the live fields (serverExporterStatus,
// deployClusters, agentStatus, lastSeen: adjacent in serverView).
type encodedServer struct {
	version    int64 // fleet.Server.Version encoded
	head, tail []byte
}

// liveFields is how the live fields of a serverView with none of them set
// encode; encodeServer cuts them out. No string value can contain it: a
// quote inside a JSON string is escaped.
var liveFields = []byte(`,"serverExporterStatus":0,"deployClusters":"","agentStatus":"","lastSeen":null,`)

func encodeServer(s fleet.Server) (*encodedServer, error) {
	v := toServerView(s)
	v.AgentStatus, v.LastSeen = "", apiTime{}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("api: encode server %s: %w", s.ID, err)
	}
	i := bytes.Index(b, liveFields)
	if i < 0 {
		return nil, fmt.Errorf("api: encode server %s: no live fields in %s", s.ID, b)
	}
	return &encodedServer{version: s.Version, head: b[:i], tail: b[i+len(liveFields):]}, nil
}

// appendTo appends the entry with the stamp's live fields.
func (e *encodedServer) appendTo(b []byte, st fleet.ServerStamp, exporter bool) []byte {
	b = append(b, e.head...)
	b = append(b, `,"serverExporterStatus":`...)
	if exporter {
		b = append(b, '1')
	} else {
		b = append(b, '0')
	}
	b = append(b, `,"deployClusters":`...)
	b = appendJSONString(b, st.DeployClusters)
	b = append(b, `,"agentStatus":`...)
	b = appendJSONString(b, string(st.AgentStatus))
	b = append(b, `,"lastSeen":`...)
	b = apiTime(st.LastSeen).appendJSON(b)
	b = append(b, ',')
	return append(b, e.tail...)
}

// appendJSONString appends s as encoding/json quotes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// listBuffers are the response bodies being built.
var listBuffers = sync.Pool{New: func() any { return new([]byte) }}

// pageHead returns the envelope of a page up to its list's "[", and what
// follows the list's "]".
func pageHead(p paging.Page, total int) (head, end []byte, err error) {
	b, err := json.Marshal(envelope{Code: 0, Msg: "SUCCESS", Message: "success", Data: newPage(p, total, []struct{}{})})
	if err != nil {
		return nil, nil, err
	}
	const closing = `]}}` // the empty list's "]", the page's "}", the envelope's "}"
	if !bytes.HasSuffix(b, []byte(`[`+closing)) {
		return nil, nil, fmt.Errorf("api: page envelope %s", b)
	}
	return b[:len(b)-len(closing)], []byte(closing + "\n"), nil
}

// listServerPage serves a page of servers from the stamps of the filter's
// servers, encoding only those whose record changed since they were last
// encoded.
func (a *API) listServerPage(c echo.Context, f fleet.ServerFilter, p paging.Page) error {
	ctx := c.Request().Context()
	stamps, total, err := a.d.Fleet.ServerStamps(ctx, f, p)
	if err != nil {
		return err
	}
	rows, err := a.encodedServers(ctx, stamps)
	if err != nil {
		return err
	}
	head, end, err := pageHead(p, total)
	if err != nil {
		return err
	}
	bp := listBuffers.Get().(*[]byte)
	defer listBuffers.Put(bp)
	b := append((*bp)[:0], head...)
	first := true
	for i, st := range stamps {
		if rows[i] == nil { // deleted since the stamps were read
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = rows[i].appendTo(b, st, a.d.Exporters.Reporting(st.ID))
	}
	b = append(b, end...)
	*bp = b
	return writeJSON(c, b)
}

// encodedServers returns the encoded entries of the stamps' servers, nil
// for one that no longer exists: kept ones at the stamp's version, the
// others read and encoded now.
func (a *API) encodedServers(ctx context.Context, stamps []fleet.ServerStamp) ([]*encodedServer, error) {
	out := make([]*encodedServer, len(stamps))
	var missing []ids.ID
	for i, st := range stamps {
		if e, ok := a.lists.servers.Get(st.ID); ok && e.version == st.Version {
			out[i] = e
			continue
		}
		missing = append(missing, st.ID)
	}
	if len(missing) == 0 {
		return out, nil
	}
	list, err := a.d.Fleet.ServersByID(ctx, missing)
	if err != nil {
		return nil, err
	}
	fresh := make(map[ids.ID]*encodedServer, len(list))
	for _, s := range list {
		e, err := encodeServer(s)
		if err != nil {
			return nil, err
		}
		fresh[s.ID] = e
		a.lists.servers.Add(s.ID, e)
	}
	for i, st := range stamps {
		if out[i] == nil {
			// Possibly newer than the stamp's version (changed since the
			// stamps were read): never older.
			out[i] = fresh[st.ID]
		}
	}
	return out, nil
}

// itemPageKey is one page of a node file's items at one version of them.
type itemPageKey struct {
	file      ids.ID
	version   int64
	num, size int
}

// writeJSON writes body, a compact JSON value and a newline as echo's
// c.JSON writes it, indented when c.JSON would indent.
func writeJSON(c echo.Context, body []byte) error {
	if _, pretty := c.QueryParams()["pretty"]; pretty || c.Echo().Debug {
		var ind bytes.Buffer
		if err := json.Indent(&ind, body, "", "  "); err != nil {
			return err
		}
		body = ind.Bytes()
	}
	return c.Blob(200, echo.MIMEApplicationJSON, body)
}

// appendJSON appends t as MarshalJSON encodes it.
func (t apiTime) appendJSON(b []byte) []byte {
	tt := time.Time(t)
	if tt.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = tt.AppendFormat(b, timeLayout)
	return append(b, '"')
}

// encodeOK is the body ok(c, data) writes, compact.
func encodeOK(data any) ([]byte, error) {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(envelope{Code: 0, Msg: "SUCCESS", Message: "success", Data: data}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
