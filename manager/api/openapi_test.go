package api

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func TestOpenAPIDocumentListsEveryRoute(t *testing.T) {
	h := newHarness(t)
	resp, err := http.Get(h.srv.URL + Prefix + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, raw)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("served document does not load: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("served document is not valid OpenAPI 3: %v", err)
	}

	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	// What the server really answers, asked of echo itself.
	a := New(h.deps(t))
	var served []string
	for _, r := range a.echo.Routes() {
		if strings.HasPrefix(r.Path, Prefix) {
			served = append(served, r.Method+" "+r.Path)
		}
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("documented routes:\n%s\n\nserved routes:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
	for _, must := range []string{"POST /admq-manager/area", "GET /admq-manager/area", "DELETE /admq-manager/area",
		"POST /admq-manager/login", "POST /admq-manager/agent/token", "GET /admq-manager/server", "DELETE /admq-manager/server"} {
		if sort.SearchStrings(served, must) == len(served) || served[sort.SearchStrings(served, must)] != must {
			t.Errorf("%s is not served", must)
		}
	}

	// The documented data of a list matches what the handler sends.
	op := doc.Paths.Find(Prefix + "/area").Get
	data := op.Responses.Status(200).Value.Content.Get("application/json").Schema.Value.Properties["data"].Value
	list := data.Properties["list"].Value.Items.Value
	for _, f := range []string{"id", "createTime", "updateTime", "code", "area"} {
		if list.Properties[f] == nil {
			t.Errorf("area list item lacks %q in the document", f)
		}
	}
	if !list.Properties["id"].Value.Type.Is("string") {
		t.Errorf("ids must be documented as strings")
	}
	// The SSH bootstrap as a job: async in the body, the jobId answered,
	// and a job's server, code and errorData.
	srv := doc.Paths.Find(Prefix + "/server").Post
	if srv.RequestBody.Value.Content.Get("application/json").Schema.Value.Properties["async"] == nil {
		t.Errorf("POST /server's body lacks async in the document")
	}
	answer := srv.Responses.Status(200).Value.Content.Get("application/json").Schema.Value.Properties["data"].Value
	for _, f := range []string{"jobId", "id", "managerIp", "agentStatus"} {
		if answer.Properties[f] == nil {
			t.Errorf("POST /server's data lacks %q in the document", f)
		}
	}
	job := doc.Paths.Find(Prefix + "/job/detail").Get.Responses.Status(200).Value.Content.Get("application/json").Schema.Value.Properties["data"].Value
	for _, f := range []string{"serverId", "clusterId", "code", "errorData"} {
		if job.Properties[f] == nil {
			t.Errorf("a job lacks %q in the document", f)
		}
	}

	var desc struct{ Info struct{ Description string } }
	json.Unmarshal(raw, &desc)
	for _, code := range []string{"| 1263 | AREA_EXIST | 409 |", "| 202 | TOKEN_INVALID | 401 |", "| 7 | PERMISSION_DENY | 403 |"} {
		if !strings.Contains(desc.Info.Description, code) {
			t.Errorf("code table lacks %q", code)
		}
	}
}
