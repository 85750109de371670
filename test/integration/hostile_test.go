package integration

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestHostileInput sends every route of every API document the manager
// serves (so a route added to a route table is covered without a word
// here) the inputs a hostile client would: malformed JSON, wrong types,
// huge bodies, huge and negative paging, control characters and NUL, path
// traversal in every name, dir and path parameter. Every answer must be a
// clear one (no 500, no internal error), a refused request must change
// nothing in the database but its own audit entry, and the inputs no
// route may accept (see mustRefuse) must be refused.
func TestHostileInput(t *testing.T) {
	integrationTest(t)
	h := startHostileEnv(t)
	var ops []hostileOp
	for _, d := range h.docs {
		ops = append(ops, h.operations(t, d)...)
	}
	if len(ops) < 50 {
		t.Fatalf("only %d operations in the API documents", len(ops))
	}
	tried, refused := 0, 0
	routes := map[string]bool{}
	for _, op := range ops {
		routes[op.method+" "+op.path] = true
		for _, in := range h.inputs(op) {
			tried++
			if h.try(t, op, in) {
				refused++
			}
		}
	}
	t.Logf("figure: %d hostile inputs to %d routes of %d API documents; %d refused, %d accepted (harmless there)",
		tried, len(routes), len(h.docs), refused, tried-refused)
}

// hostileEnv is a manager with something of everything in it: a server,
// a package, a cluster with a node and config, a third-party app with a
// grant; ids maps the names of id parameters to real ids.
type hostileEnv struct {
	tm      *testenv.Manager
	c       *testenv.Client
	db      *sql.DB
	docs    []apiDoc
	ids     map[string]string
	root    string
	token   string // the console's bearer token (admin)
	apollo  string // the Open API token
	cluster string
	// last and audits are the database as the previous request left it.
	last   string
	audits int
	seq    int
	// counters and content are snapshot's last reading.
	counters, content string
}

// apiDoc is one served OpenAPI document and how its routes authenticate.
type apiDoc struct {
	url    string
	bearer bool // console: "Bearer <jwt>"; else the raw Open API token
	strict bool // the console: refuses unknown fields and wrong types
}

func startHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	root := t.TempDir()
	// Agent binaries for SSH bootstrap, so that a POST /server with a
	// password gets as far as dialing (port 1: refused at once).
	agents := filepath.Join(root, "agents")
	os.MkdirAll(agents, 0o755)
	for _, a := range []string{"amd64", "arm64"} {
		os.WriteFile(filepath.Join(agents, "admq-agent-linux-"+a), []byte("#!/bin/sh\n"), 0o755)
	}
	tm := testenv.StartManager(t, func(c *manager.Config) { c.AgentDir = agents; c.SSHDialTimeout = 2 * time.Second })
	c := tm.Client(t)
	h := &hostileEnv{tm: tm, c: c, root: root, ids: map[string]string{}, cluster: apolloApp}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(tm.Config().DataDir, "admq.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h.db = db
	countChanges(t, db)
	base := "http://" + tm.HTTPAddr()
	h.docs = []apiDoc{
		{url: base + "/admq-manager/openapi.json", bearer: true, strict: true},
		{url: base + "/openapi/v1/openapi.json"},
	}

	var login struct{ Token string }
	c.OK(t, http.MethodPost, "/login", map[string]string{"username": "admin", "password": testenv.AdminPassword}, &login)
	h.token = login.Token
	const ip = "127.0.93.1"
	var srv struct{ ID string }
	c.OK(t, http.MethodPost, "/server", map[string]any{"room": "default", "managerIp": ip, "dataIp": ip}, &srv)
	pkg := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-hostile-V1.0-x86.tar.gz", apolloManifest(),
		workloads.Entry{Name: "conf/app.properties", Data: []byte("session.timeout=3000\n")},
		workloads.Entry{Name: "conf/log4j.properties", Data: []byte("log4j.rootLogger=INFO, R\n")},
		workloads.Entry{Name: "conf/notes.txt", Data: []byte("free text\n")},
		workloads.Entry{Name: "conf/broker.properties", Data: []byte("num.partitions=3\n")},
	))
	cl := c.CreateCluster(t, testenv.NewCluster{Name: h.cluster, PackageID: pkg.ID, BrokerList: []testenv.ClusterNode{{
		ManagerIP: ip, ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}",
	}}})
	node := c.Nodes(t, cl.ID)[0]
	var files []struct{ ID, ClusterFileID string }
	c.OK(t, http.MethodGet, "/cluster/node/config/file?nodeId="+node.ID, nil, &files)
	var created struct{ ID, Token string }
	c.OK(t, http.MethodPost, "/consumer", map[string]any{"appId": "hostile", "name": "hostile", "orgId": "test", "orgName": "Test",
		"ownerName": "admin", "ownerEmail": "admin@example.com"}, &created)
	c.OK(t, http.MethodPost, "/consumer/grant", map[string]any{"consumerId": created.ID, "appId": h.cluster, "modify": true, "release": true}, nil)
	h.apollo = created.Token
	var areas struct{ List []struct{ ID string } }
	c.OK(t, http.MethodGet, "/area", nil, &areas)
	var items struct{ List []struct{ ID string } }
	c.OK(t, http.MethodGet, "/cluster/node/config?configFileId="+files[0].ID, nil, &items)
	h.ids["nodeItem"] = items.List[0].ID
	c.OK(t, http.MethodGet, "/cluster/config?configFileId="+files[0].ClusterFileID, nil, &items)
	h.ids["clusterItem"] = items.List[0].ID
	for k, v := range map[string]string{
		"clusterId": cl.ID, "cid": cl.ID, "packageId": pkg.ID, "serverId": srv.ID, "nodeId": node.ID, "consumerId": created.ID,
		"configFileId": files[0].ID, "areaId": areas.List[0].ID,
	} {
		h.ids[k] = v
	}
	return h
}

// schema is the part of an OpenAPI schema the test reads.
type schema struct {
	Type       string             `json:"type"`
	Pattern    string             `json:"pattern"`
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
}

type hostileOp struct {
	doc          apiDoc
	method, path string // path with {params}, the document's server prefix included
	query        []string
	strictQuery  []string // the query parameters that take only numbers or ids
	pathParams   []string
	body         *schema // JSON body; nil for none
	multipart    bool
}

// operations reads the document at d.url.
func (h *hostileEnv) operations(t *testing.T, d apiDoc) []hostileOp {
	t.Helper()
	resp, err := http.Get(d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Servers []struct{ URL string }
		Paths   map[string]map[string]struct {
			Parameters []struct {
				In, Name string
				Schema   schema
			}
			RequestBody struct {
				Content map[string]struct {
					Schema *schema `json:"schema"`
				}
			} `json:"requestBody"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("%s: %v", d.url, err)
	}
	prefix := ""
	if len(doc.Servers) > 0 {
		prefix = doc.Servers[0].URL
	}
	var out []hostileOp
	for p, methods := range doc.Paths {
		if !strings.HasPrefix(p, prefix) {
			p = prefix + p
		}
		for m, o := range methods {
			op := hostileOp{doc: d, method: strings.ToUpper(m), path: p}
			for _, prm := range o.Parameters {
				switch prm.In {
				case "query":
					op.query = append(op.query, prm.Name)
					// Numbers and ids must be refused when hostile; a
					// filter of free text may take anything.
					if prm.Schema.Type == "integer" || prm.Schema.Pattern != "" || idLike.MatchString(prm.Name) {
						op.strictQuery = append(op.strictQuery, prm.Name)
					}
				case "path":
					op.pathParams = append(op.pathParams, prm.Name)
				}
			}
			for ct, c := range o.RequestBody.Content {
				switch ct {
				case "application/json":
					op.body = c.Schema
				case "multipart/form-data":
					op.multipart = true
				}
			}
			out = append(out, op)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// hostileInput is one request: a body (raw), query and path parameters,
// what it is, and whether every route must refuse it.
type hostileInput struct {
	what        string
	body        []byte
	contentType string
	query       url.Values
	pathParams  map[string]string
	mustRefuse  bool
}

// The values tried.
var (
	malformedJSON = []string{`{`, `{"a":}`, `[]`, `"x"`, `1`, `{}{}`, `{"a":1}`, "\xff\xfe{}", strings.Repeat("[", 20000) + strings.Repeat("]", 20000)}
	controlValues = []string{"a\x00b", "\x1b[2Jx", "a\nb", "a\u202eb", strings.Repeat("a", 100_000)}
	traversal     = []string{"../../../etc/passwd", "/etc/passwd", "..", `..\..\windows`, "/", ""}
	hostileParams = []string{"-1", "0", "99999999999999999999999", "1e3", "\x00", "../../etc"}
)

// nameLike are the string fields that name something (a user, a cluster,
// a dir, an address …): path traversal and huge values must be refused in
// them. Config keys are free-form names (a key may hold "../x").
var nameLike = regexp.MustCompile(`(?i)^(name|code|username|clustername|namespacename|appid|component|managerip|dataip|programdir|datadir|role|cmd|room|account|env|orgid|id)$`)

// rawText are the string fields that may hold anything, control
// characters included: secrets, config values and their comments (a
// comment may span lines; only NUL is refused). Every other string
// field must refuse control characters (NUL, escape sequences, line
// breaks), which would corrupt the log lines and terminals showing them.
var rawText = regexp.MustCompile(`(?i)^(password|newpassword|oldpassword|passphrase|privatekey|configvalue|value|comment|describes)$`)

// isControl says whether v is one of controlValues with a control
// character (not the bidi mark or the long value).
func isControl(v string) bool {
	return strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// idLike are the string fields and parameters that carry an id, which a
// JSON number may carry too.
var idLike = regexp.MustCompile(`(?i)(^id$|id$|^ids$|^cid$)`)

// baseBody is a valid-looking body for op: real ids where a route that
// changes something can use them (never for DELETE: it could delete
// them), ordinary values elsewhere.
func (h *hostileEnv) baseBody(op hostileOp, s *schema, field string) any {
	switch s.Type {
	case "object":
		m := map[string]any{}
		for k, p := range s.Properties {
			m[k] = h.baseBody(op, p, k)
		}
		return m
	case "array":
		if s.Items != nil && s.Items.Type == "object" {
			return []any{h.baseBody(op, s.Items, field)}
		}
		if field == "ids" && op.method == http.MethodPut {
			return []any{h.baseBody(op, &schema{Type: "string"}, "id")}
		}
		return []any{}
	case "integer":
		switch field {
		case "sshPort":
			return 1 // nothing listens: a bootstrap is refused at once
		case "serverPort":
			return 18999
		}
		return 1
	case "boolean":
		return false
	}
	if id, ok := h.ids[field]; ok && op.method != http.MethodDelete {
		return id
	}
	if field == "id" && op.method == http.MethodPut {
		switch {
		case strings.Contains(op.path, "/cluster/node/config"):
			return h.ids["nodeItem"]
		case strings.Contains(op.path, "/cluster/config"):
			return h.ids["clusterItem"]
		}
	}
	switch field {
	case "managerIp", "dataIp":
		if strings.HasSuffix(op.path, "/server") {
			h.seq++
			return fmt.Sprintf("127.0.94.%d", 1+h.seq%250) // a new server
		}
		return "127.0.93.1"
	case "clusterName":
		return "default"
	case "namespaceName":
		return "broker.properties"
	case "ownerEmail":
		return "admin@example.com"
	case "privateKey", "passphrase":
		return ""
	case "programDir", "dataDir":
		return h.root + "/hostile/" + field
	case "password", "newPassword", "oldPassword":
		return "long-enough-1"
	case "role":
		return "viewer"
	case "room":
		return "default"
	case "component":
		return "broker"
	case "cmd":
		return "restart"
	case "appId":
		if !strings.HasSuffix(op.path, "/consumer") {
			return h.cluster
		}
	}
	if s.Pattern != "" || idLike.MatchString(field) {
		return "1" // no such record
	}
	// A new name each time, so that a create is refused for the value
	// under test, not for a name taken by the previous one.
	h.seq++
	return fmt.Sprintf("h%d", h.seq)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// inputs are the hostile requests for op.
func (h *hostileEnv) inputs(op hostileOp) []hostileInput {
	var out []hostileInput
	baseQuery := url.Values{}
	for _, q := range op.query {
		if id, ok := h.ids[q]; ok && op.method == http.MethodGet {
			baseQuery.Set(q, id)
		}
		if q == "operator" {
			baseQuery.Set(q, "admin")
		}
	}
	basePath := map[string]string{"env": "PRO", "appId": h.cluster, "clusterName": "default", "namespaceName": "broker.properties", "key": "num.partitions"}
	with := func(in hostileInput) hostileInput {
		if in.query == nil {
			in.query = baseQuery
		}
		if in.pathParams == nil {
			in.pathParams = basePath
		}
		return in
	}
	if op.body != nil {
		base := h.baseBody(op, op.body, "")
		if os.Getenv("ADMQ_HOSTILE_LIST") != "" {
			out = append(out, with(hostileInput{what: "BASE " + string(mustJSON(base)), body: mustJSON(base)}))
		}
		for _, m := range malformedJSON {
			// The Open API reads bodies as Apollo does (unknown fields are
			// ignored), so only broken JSON must be refused there.
			must := op.doc.strict || (m != `{"a":1}` && m != `{}{}`)
			out = append(out, with(hostileInput{what: "malformed JSON " + clipQ(m), body: []byte(m), mustRefuse: must}))
		}
		out = append(out, with(hostileInput{what: "huge body (2 MiB)", body: mustJSON(map[string]string{"x": strings.Repeat("A", 2<<20)}), mustRefuse: true}))
		for _, v := range h.fieldVariants(op, base) {
			out = append(out, with(v))
		}
	}
	if op.multipart {
		out = append(out, h.multipartInputs(with)...)
	}
	for _, q := range op.query {
		for _, v := range hostileParams {
			qs := url.Values{}
			for k, vs := range baseQuery {
				qs[k] = vs
			}
			qs.Set(q, v)
			must := op.doc.strict && slices.Contains(op.strictQuery, q)
			out = append(out, with(hostileInput{what: "query " + q + "=" + clipQ(v), query: qs, mustRefuse: must}))
		}
	}
	for _, p := range op.pathParams {
		for _, v := range append(slices.Clone(traversal[:4]), "\x00", strings.Repeat("a", 5000)) {
			pp := map[string]string{}
			for k, x := range basePath {
				pp[k] = x
			}
			pp[p] = v
			out = append(out, with(hostileInput{what: "path {" + p + "}=" + clipQ(v), pathParams: pp}))
		}
	}
	return out
}

// fieldVariants changes one field of the base body at a time (top level,
// and the first element of arrays of objects).
func (h *hostileEnv) fieldVariants(op hostileOp, base any) []hostileInput {
	var out []hostileInput
	var walk func(s *schema, set func(func(map[string]any)) any, path string)
	walk = func(s *schema, set func(func(map[string]any)) any, path string) {
		for name, p := range s.Properties {
			field := name
			setField := func(v any) any {
				return set(func(m map[string]any) { m[field] = v })
			}
			where := path + field
			var wrong []any
			switch p.Type {
			case "string":
				wrong = []any{true, []any{}, map[string]any{}}
				if !idLike.MatchString(field) {
					wrong = append(wrong, 12345)
				}
				for _, v := range append(slices.Clone(controlValues), traversal...) {
					var must bool
					switch {
					case isControl(v):
						must = !rawText.MatchString(field)
					case v == "a\u202eb", v == "":
						// Bidi marks are printable; empty is absent,
						// which optional fields take.
					default: // traversal, huge
						must = nameLike.MatchString(field)
					}
					must = must && op.doc.strict
					out = append(out, hostileInput{what: where + "=" + clipQ(v), body: mustJSON(setField(v)), mustRefuse: must})
				}
			case "integer":
				wrong = []any{"12", true, []any{}, map[string]any{}, 1.5}
				for _, v := range []any{-1, 1 << 62, json.Number("1e400")} {
					out = append(out, hostileInput{what: fmt.Sprintf("%s=%v", where, v), body: mustJSON(setField(v))})
				}
			case "boolean":
				wrong = []any{"true", 1, []any{}}
			case "array":
				wrong = []any{"x", map[string]any{}, 1}
				if p.Items != nil && p.Items.Type == "object" {
					walk(p.Items, func(f func(map[string]any)) any {
						return setField(func() any {
							elem := h.baseBody(op, p.Items, field).(map[string]any)
							f(elem)
							return []any{elem}
						}())
					}, where+"[0].")
				}
			case "object":
				wrong = []any{"x", []any{}, 1}
			}
			for _, v := range wrong {
				out = append(out, hostileInput{what: fmt.Sprintf("%s of the wrong type (%s)", where, clipQ(string(mustJSON(v)))),
					body: mustJSON(setField(v)), mustRefuse: op.doc.strict})
			}
		}
	}
	// set applies f to a fresh copy of the base body and returns it.
	walk(op.body, func(f func(map[string]any)) any {
		var m map[string]any
		json.Unmarshal(mustJSON(base), &m)
		f(m)
		return m
	}, "")
	return out
}

func (h *hostileEnv) multipartInputs(with func(hostileInput) hostileInput) []hostileInput {
	part := func(field, filename string, data []byte) ([]byte, string) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		fw, _ := w.CreateFormFile(field, filename)
		fw.Write(data)
		w.Close()
		return b.Bytes(), w.FormDataContentType()
	}
	var out []hostileInput
	for _, name := range []string{"../../../tmp/evil-V1.0-x86.tar.gz", "/etc/evil-V1.0-x86.tar.gz", "evil\x00-V1.0-x86.tar.gz", "evil-V1.0-x86.tar.gz"} {
		b, ct := part("file", name, []byte("not a tar"))
		out = append(out, with(hostileInput{what: "upload named " + clipQ(name), body: b, contentType: ct, mustRefuse: true}))
	}
	b, ct := part("other", "x-V1.0-x86.tar.gz", []byte("x"))
	out = append(out, with(hostileInput{what: "upload without the file field", body: b, contentType: ct, mustRefuse: true}))
	out = append(out, with(hostileInput{what: "upload as JSON", body: []byte(`{"file":"x"}`), contentType: "application/json", mustRefuse: true}))
	out = append(out, with(hostileInput{what: "upload, broken multipart", body: []byte("--x\r\nnot a part"), contentType: "multipart/form-data; boundary=x", mustRefuse: true}))
	return out
}

func clipQ(s string) string {
	if len(s) > 40 {
		s = s[:40] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return fmt.Sprintf("%q", s)
}

// try sends one hostile request and checks the answer; it reports
// whether the request was refused.
func (h *hostileEnv) try(t *testing.T, op hostileOp, in hostileInput) bool {
	t.Helper()
	p := op.path
	for k, v := range in.pathParams {
		p = strings.ReplaceAll(p, "{"+k+"}", url.PathEscape(v))
	}
	u := "http://" + h.tm.HTTPAddr() + p
	if len(in.query) > 0 {
		u += "?" + in.query.Encode()
	}
	// The state before is the state after the previous request: nothing
	// else writes while the test runs.
	if h.last == "" {
		h.last, h.audits = h.snapshot(t), h.auditCount(t)
	}
	before, audits := h.last, h.audits
	defer func() { h.last, h.audits = h.snapshot(t), h.auditCount(t) }()
	req, err := http.NewRequest(op.method, u, bytes.NewReader(in.body))
	if err != nil {
		t.Fatalf("%s %s %s: %v", op.method, op.path, in.what, err)
	}
	switch {
	case in.contentType != "":
		req.Header.Set("Content-Type", in.contentType)
	case in.body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	if op.doc.bearer {
		req.Header.Set("Authorization", "Bearer "+h.token)
	} else {
		req.Header.Set("Authorization", h.apollo)
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s, %s: %v", op.method, op.path, in.what, err)
		return true
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	label := fmt.Sprintf("%s %s, %s: HTTP %d %s", op.method, op.path, in.what, resp.StatusCode, clipQ(string(raw)))
	if strings.HasPrefix(in.what, "BASE") {
		label = fmt.Sprintf("%s %s: HTTP %d %s", op.method, op.path, resp.StatusCode, raw)
	}

	refused := resp.StatusCode >= 400
	if op.doc.bearer && !strings.HasSuffix(op.path, "/events") && !strings.HasSuffix(op.path, "/openapi.json") {
		var env struct {
			Code    *int   `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(raw, &env); err != nil || env.Code == nil {
			t.Errorf("%s: not an envelope", label)
			return true
		}
		refused = *env.Code != 0
		if *env.Code == 1 || (refused && env.Message == "") {
			t.Errorf("%s: an internal error or no message, not a clear code", label)
		}
	}
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusBadGateway {
		t.Errorf("%s: a server error", label)
	}
	if (!refused || strings.HasPrefix(in.what, "BASE")) && os.Getenv("ADMQ_HOSTILE_LIST") != "" {
		t.Logf("accepted: %s", label)
	}
	if in.mustRefuse && !refused {
		t.Errorf("%s: accepted; it must be refused", label)
	}
	if refused {
		if after := h.snapshot(t); after != before {
			t.Errorf("%s: refused, but the database changed:\n%s", label, diffSnap(before, after))
		}
		if n := h.auditCount(t); n > audits+1 {
			t.Errorf("%s: %d audit entries for one refused request", label, n-audits)
		}
	}
	return refused
}

// countChanges has the database count, per table, every row inserted,
// updated or deleted from now on, by whichever connection: a table of
// counters and a trigger on each table (but the audit log) that bumps its
// counter. Reading the counters is one cheap query per request; only when
// they moved are the tables read (reading them after every request took
// minutes under the race detector). A change undone (a failed SSH
// bootstrap adds a server and removes it) moves the counters but not the
// tables' content, which is what is compared. server_list_gen is not data
// but the server list's cache generation: an undone change moves it too,
// as it must (it only ever grows).
func countChanges(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('audit_log', 'goose_db_version', 'server_list_gen') AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	stmts := []string{`CREATE TABLE hostile_changes (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0)`}
	for _, tb := range tables {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO hostile_changes (tbl) VALUES ('%s')`, tb))
		for _, ev := range []string{"INSERT", "UPDATE", "DELETE"} {
			stmts = append(stmts, fmt.Sprintf(`CREATE TRIGGER "hostile_%s_%s" AFTER %s ON "%s" BEGIN UPDATE hostile_changes SET n = n + 1 WHERE tbl = '%s'; END`,
				tb, strings.ToLower(ev), ev, tb, tb))
		}
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// snapshot is every table but the audit log's, one line a table with the
// digest of its rows; it reads them only when their change counters moved
// since the last call.
func (h *hostileEnv) snapshot(t *testing.T) string {
	t.Helper()
	var counters string
	if err := h.db.QueryRow(`SELECT group_concat(tbl || ' ' || n, char(10)) FROM (SELECT tbl, n FROM hostile_changes ORDER BY tbl)`).Scan(&counters); err != nil {
		t.Fatal(err)
	}
	if counters == h.counters && h.content != "" {
		return h.content
	}
	h.counters = counters
	var b strings.Builder
	rows, err := h.db.Query(`SELECT tbl FROM hostile_changes ORDER BY tbl`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	for _, tb := range tables {
		r, err := h.db.Query(`SELECT * FROM "` + tb + `" ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := r.Columns()
		d := sha256.New()
		n := 0
		for r.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			r.Scan(ptrs...)
			fmt.Fprintf(d, "%v\n", vals)
			n++
		}
		r.Close()
		fmt.Fprintf(&b, "%s %d %s\n", tb, n, hex.EncodeToString(d.Sum(nil))[:12])
	}
	h.content = b.String()
	return h.content
}

func (h *hostileEnv) auditCount(t *testing.T) int {
	var n int
	if err := h.db.QueryRow(`SELECT COUNT(*) FROM audit_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func diffSnap(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, "  "+x+" -> "+y)
		}
	}
	return strings.Join(out, "\n")
}
