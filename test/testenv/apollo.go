package testenv

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ApolloClient speaks to a manager's Apollo-compatible Open API exactly as
// one of Apollo's own clients does on the wire (they cannot be vendored
// into the project, and the tests have no internet):
//
//   - ApolloJava, as ApolloOpenApiClient (apollo-openapi, Apache
//     HttpClient): Authorization on every request; a body only on POST and
//     PUT, Gson-encoded (so a void call like rollback sends "null"), with
//     Content-Type "application/json; charset=UTF-8"; no Content-Type on GET
//     and DELETE; path segments escaped as Guava's urlPathSegmentEscaper
//     does, keys holding '/' or '\' sent base64-encoded under
//     encodedItems/; query values form-escaped; organizations asked at
//     /openapi/v1//organizations (the client doubles the slash).
//   - ApolloBash, as the openapi.sh functions (curl): Authorization and
//     "Content-Type: application/json;charset=UTF-8" on every method, GET
//     included; DELETE with an empty --data body; path segments pasted
//     unescaped (keys with dots go as they are).
type ApolloClient struct {
	base   string
	token  string
	flavor ApolloFlavor
	hc     *http.Client
	// Observe, if set, sees every answer with the request's method and
	// path (under /openapi/v1, as sent).
	Observe func(method, path string, a ApolloAnswer)
}

// ApolloFlavor is which client's HTTP an ApolloClient sends.
type ApolloFlavor int

// The flavors.
const (
	ApolloJava ApolloFlavor = iota
	ApolloBash
)

func (f ApolloFlavor) String() string {
	if f == ApolloBash {
		return "openapi.sh"
	}
	return "ApolloOpenApiClient"
}

// Apollo returns a client of m's Open API with token, in flavor.
func (m *Manager) Apollo(token string, flavor ApolloFlavor) *ApolloClient {
	return &ApolloClient{base: "http://" + m.httpAddr, token: token, flavor: flavor, hc: &http.Client{Timeout: DefaultClientTimeout}}
}

// Flavor is which client's HTTP c sends.
func (c *ApolloClient) Flavor() ApolloFlavor { return c.flavor }

// ApolloAnswer is one HTTP answer: its status, content type and body.
type ApolloAnswer struct {
	Status      int
	ContentType string
	Body        []byte
}

// Error decodes an error answer's body ({status, message, timestamp,
// exception}).
func (a ApolloAnswer) Error() ApolloError {
	var e ApolloError
	_ = json.Unmarshal(a.Body, &e)
	return e
}

func (a ApolloAnswer) String() string {
	return fmt.Sprintf("HTTP %d %s", a.Status, a.Body)
}

// ApolloError is Apollo's error body.
type ApolloError struct {
	Status    int    `json:"status"`
	Message   string `json:"message"`
	Timestamp string `json:"timestamp"`
	Exception string `json:"exception"`
}

// Send makes one request: segments are the path under /openapi/v1, each
// escaped (or not) as the flavor does; query is appended as the flavor
// escapes it; body, for POST and PUT, is JSON-encoded (nil is Gson's
// "null" for ApolloJava, no body for ApolloBash).
func (c *ApolloClient) Send(method string, segments []string, query [][2]string, body any) (ApolloAnswer, error) {
	path := c.path(segments)
	url := c.base + "/openapi/v1/" + path
	if len(query) > 0 {
		var q []string
		for _, kv := range query {
			if c.flavor == ApolloJava {
				q = append(q, kv[0]+"="+formEscape(kv[1]))
			} else {
				q = append(q, kv[0]+"="+kv[1])
			}
		}
		url += "?" + strings.Join(q, "&")
	}
	var rd io.Reader
	withBody := method == http.MethodPost || method == http.MethodPut
	if withBody && (body != nil || c.flavor == ApolloJava) {
		b, err := json.Marshal(body)
		if err != nil {
			return ApolloAnswer{}, err
		}
		rd = strings.NewReader(string(b))
	}
	// curl -X DELETE --data "" sends an empty body, Go's client no body:
	// the same bytes on the wire but for a Content-Length of 0.
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return ApolloAnswer{}, err
	}
	req.Header.Set("Authorization", c.token)
	switch {
	case c.flavor == ApolloBash:
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	case withBody:
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	}
	return c.do(req, method, path)
}

func (c *ApolloClient) do(req *http.Request, method, path string) (ApolloAnswer, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return ApolloAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ApolloAnswer{}, err
	}
	a := ApolloAnswer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}
	if c.Observe != nil {
		c.Observe(method, "/"+path, a)
	}
	return a, nil
}

// SendRaw sends body as it is with contentType, as a client that gets
// the content type wrong would.
func (c *ApolloClient) SendRaw(method string, segments []string, contentType, body string) (ApolloAnswer, error) {
	path := c.path(segments)
	req, err := http.NewRequest(method, c.base+"/openapi/v1/"+path, strings.NewReader(body))
	if err != nil {
		return ApolloAnswer{}, err
	}
	req.Header.Set("Authorization", c.token)
	req.Header.Set("Content-Type", contentType)
	return c.do(req, method, path)
}

// path joins segments as the flavor builds paths. An "items" segment
// followed by a key holding '/' or '\' becomes encodedItems/<base64> for
// ApolloJava, as its path builder does.
func (c *ApolloClient) path(segments []string) string {
	out := make([]string, 0, len(segments))
	for i := 0; i < len(segments); i++ {
		s := segments[i]
		if c.flavor == ApolloBash {
			out = append(out, s)
			continue
		}
		if s == "items" && i+1 < len(segments) && strings.ContainsAny(segments[i+1], `/\`) {
			out = append(out, "encodedItems", pathEscape(base64.StdEncoding.EncodeToString([]byte(segments[i+1]))))
			i++
			continue
		}
		if s == "/organizations" { // the Java client's own spelling
			out = append(out, s)
			continue
		}
		out = append(out, pathEscape(s))
	}
	return strings.Join(out, "/")
}

// Must makes a request and fails the test unless it answers want.
func (c *ApolloClient) Must(t testing.TB, want int, method string, segments []string, query [][2]string, body any) ApolloAnswer {
	t.Helper()
	a, err := c.Send(method, segments, query, body)
	if err != nil {
		t.Fatalf("%s %s /%s: %v", c.flavor, method, strings.Join(segments, "/"), err)
	}
	if a.Status != want {
		t.Fatalf("%s %s /%s: %s, want HTTP %d", c.flavor, method, strings.Join(segments, "/"), a, want)
	}
	return a
}

// Get decodes a 200 answer of a GET into out.
func (c *ApolloClient) Get(t testing.TB, segments []string, query [][2]string, out any) ApolloAnswer {
	t.Helper()
	a := c.Must(t, http.StatusOK, http.MethodGet, segments, query, nil)
	if out != nil {
		// Numbers as they are: release ids pass 2^53, past a float64.
		dec := json.NewDecoder(strings.NewReader(string(a.Body)))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			t.Fatalf("%s GET /%s: %v in %s", c.flavor, strings.Join(segments, "/"), err, a.Body)
		}
	}
	return a
}

// ApolloID reads an id that Get decoded into an any (a json.Number).
func ApolloID(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("id %v (%T) is not a JSON number", v, v)
	}
	id, err := n.Int64()
	if err != nil {
		t.Fatalf("id %s: %v", n, err)
	}
	return id
}

// NS is the path of a namespace: envs/env/apps/app/clusters/cluster/namespaces/ns.
func NS(env, app, cluster, ns string, more ...string) []string {
	return append([]string{"envs", env, "apps", app, "clusters", cluster, "namespaces", ns}, more...)
}

// ApolloDate is Gson's yyyy-MM-dd'T'HH:mm:ss.SSSZ.
const ApolloDate = "2006-01-02T15:04:05.000-0700"

// ParseApolloDate parses a date as Apollo's clients do, failing the test
// on another format.
func ParseApolloDate(t testing.TB, s string) time.Time {
	t.Helper()
	d, err := time.Parse(ApolloDate, s)
	if err != nil {
		t.Fatalf("date %q is not yyyy-MM-dd'T'HH:mm:ss.SSSZ: %v", s, err)
	}
	return d
}

// pathEscape escapes a path segment as Guava's urlPathSegmentEscaper:
// letters, digits, "-._~", "!$&'()*+,;=" and ":@" stay, every other byte
// of the UTF-8 is %XX (upper case).
func pathEscape(s string) string { return escapeBytes(s, "-._~!$&'()*+,;=:@", false) }

// formEscape escapes a query value as Guava's urlFormParameterEscaper:
// letters, digits and "-_.*" stay, a space is "+", every other byte %XX.
func formEscape(s string) string { return escapeBytes(s, "-_.*", true) }

func escapeBytes(s, safe string, plusForSpace bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', strings.IndexByte(safe, ch) >= 0:
			b.WriteByte(ch)
		case ch == ' ' && plusForSpace:
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

// ApolloItem is OpenItemDTO as ApolloOpenApiClient sends it with Gson:
// null strings left out, the int type always there.
type ApolloItem struct {
	Key                      string `json:"key,omitempty"`
	Type                     int    `json:"type"`
	Value                    string `json:"value"`
	Comment                  string `json:"comment,omitempty"`
	DataChangeCreatedBy      string `json:"dataChangeCreatedBy,omitempty"`
	DataChangeLastModifiedBy string `json:"dataChangeLastModifiedBy,omitempty"`
}

// ApolloRelease is NamespaceReleaseDTO as ApolloOpenApiClient sends it.
type ApolloRelease struct {
	ReleaseTitle       string `json:"releaseTitle,omitempty"`
	ReleaseComment     string `json:"releaseComment,omitempty"`
	ReleasedBy         string `json:"releasedBy,omitempty"`
	IsEmergencyPublish bool   `json:"isEmergencyPublish"`
}
