package apollo

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

	"github.com/admq/admq-manager/internal/version"
)

// mappingDescription is the head of the OpenAPI document: how Apollo's
// names map onto ADMQ, and the wire rules.
const mappingDescription = `Apollo-compatible configuration Open API of an ADMQ manager. Apollo's Open API clients (the Java ApolloOpenApiClient, the .NET client, the bash openapi.sh functions) work against it unchanged.

Mapping of Apollo's names onto ADMQ:

| Apollo | ADMQ |
|---|---|
| env | this manager's environment (--env / ADMQ_ENV, default PRO; matched case-insensitively, PROD reads as PRO) |
| appId | an ADMQ cluster's name |
| clusterName | default: the cluster-wide layer of the config files; a node's name ({nodeDir}, e.g. coordinator-2): that node's overrides |
| namespaceName | a config file: its file name (zoo.cfg), or component.file (coordinator.zoo.cfg), which always works and is required when two components have a file of that name |
| format | properties for key=value files; txt for raw files, which hold one item, content |
| item | one key of the file |
| release | a flush of the layer: publishing default rolls out to every node holding the file, a node's name flushes that node |
| organization | an availability area |
| gray release (branches) | refused with a 400: a config file has one draft per layer, a branch needs its own; canary by publishing one node's cluster, then default |
| third-party app (consumer) | registered by an admin with POST /admq-manager/consumer and granted apps, clusters and namespaces with POST /admq-manager/consumer/grant |

Wire rules: the token goes as it is in the Authorization header (no Bearer). application/json (any charset) is accepted on every method, GET and DELETE included; a body on GET or DELETE is ignored. JSON is Gson's: Apollo's DTO field names, null fields left out, dates yyyy-MM-dd'T'HH:mm:ss.SSSZ (2016-08-11T12:06:41.818+0800), release ids as numbers (64-bit: past 2^53, read them as integers). Every success is HTTP 200; a void answer has an empty body. Errors are {"status","message","timestamp","exception"}: 400 bad parameter (missing or unknown operator, key too long, locked namespace, unknown env), 401 missing, unknown, revoked or expired token, 403 no grant, 404 unknown app, cluster, namespace, item or release, 405 method not allowed, 500 anything else. A token reads and writes only what its grants name.

Authors and optional fields: an item's dataChangeCreatedBy and dataChangeLastModifiedBy are the console user or operator who added it and who last changed it; a key that came with a package names the console user who created the cluster or added the nodes (the request that imported the package's config files), or admq-import for a key imported by a manager older than that record. dataChangeCreatedByDisplayName and dataChangeLastModifiedByDisplayName go with every author and equal it: console users have no display name. An item's lineNum is its place among the keys of the file as that cluster renders it, from 1 (keys switched off are not counted). A cluster's id is the ADMQ cluster's id for default and the node's id for a node; parentClusterId is always 0, as Apollo answers for every cluster that is not a gray branch. Left out: extendInfo (the portal's draft-against-release state of an item and a namespace's hidden and modified-count flags; asked for with extendInfo=true, it has no counterpart here and is ignored), an app's ownerName, ownerEmail, ownerDisplayName, orgId and orgName (an ADMQ cluster has no owner or organization), and the authors of apps, clusters, namespaces (a cluster, a node and a file layer do not record who created them).`

var gsonTimeType = reflect.TypeOf(gsonTime{})

func describeTypes(name string, t reflect.Type, tag reflect.StructTag, s *openapi3.Schema) error {
	if t == gsonTimeType {
		*s = *openapi3.NewStringSchema()
		s.Description = "time as yyyy-MM-dd'T'HH:mm:ss.SSSZ, e.g. 2016-08-11T12:06:41.818+0800; left out when unset"
		s.Pattern = `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}$`
	}
	return nil
}

// OpenAPI builds the OpenAPI 3 document of the Open API from the route table.
func (s *Server) OpenAPI() (*openapi3.T, error) {
	s.docOnce.Do(func() { s.doc, s.docErr = s.buildOpenAPI() })
	return s.doc, s.docErr
}

func (s *Server) buildOpenAPI() (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{
			Title:       "ADMQ manager Apollo-compatible Open API",
			Version:     version.Version,
			Description: mappingDescription,
		},
		Servers: openapi3.Servers{{URL: Prefix}},
		Paths:   openapi3.NewPaths(),
		Components: &openapi3.Components{
			SecuritySchemes: openapi3.SecuritySchemes{
				"token": &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().
					WithType("apiKey").WithIn("header").WithName("Authorization").
					WithDescription("the third-party app's token, as it is")},
			},
		},
	}
	gen := openapi3gen.NewGenerator(openapi3gen.SchemaCustomizer(describeTypes))
	errSchema, err := gen.NewSchemaRefForValue(errorBody{}, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range s.routes {
		op := openapi3.NewOperation()
		op.Summary = r.summary
		op.OperationID = operationID(r.method, r.path)
		if r.access != accessPublic {
			op.Security = &openapi3.SecurityRequirements{{"token": []string{}}}
			op.Description = fmt.Sprintf("Needs a grant: %s.", r.access)
		}
		for _, seg := range strings.Split(r.path, "/") {
			if name, ok := strings.CutPrefix(seg, ":"); ok {
				p := openapi3.NewPathParameter(name).WithSchema(openapi3.NewStringSchema())
				op.AddParameter(p)
			}
		}
		for _, q := range r.query {
			p := openapi3.NewQueryParameter(q.name).WithDescription(q.desc)
			switch q.kind {
			case "integer":
				p.Schema = openapi3.NewIntegerSchema().NewRef()
			case "boolean":
				p.Schema = openapi3.NewBoolSchema().NewRef()
			default:
				p.Schema = openapi3.NewStringSchema().NewRef()
			}
			op.AddParameter(p)
		}
		if r.body != nil {
			b, err := gen.NewSchemaRefForValue(r.body, nil)
			if err != nil {
				return nil, fmt.Errorf("schema of %s %s body: %w", r.method, r.path, err)
			}
			op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithJSONSchemaRef(b)}
		}
		ok := openapi3.NewResponse().WithDescription("success; an empty body")
		if r.resp != nil {
			b, err := gen.NewSchemaRefForValue(r.resp, nil)
			if err != nil {
				return nil, fmt.Errorf("schema of %s %s answer: %w", r.method, r.path, err)
			}
			ok = openapi3.NewResponse().WithDescription("success").WithJSONSchemaRef(b)
		}
		if r.path == "/openapi.json" {
			ok = openapi3.NewResponse().WithDescription("this document").WithJSONSchema(openapi3.NewObjectSchema())
		}
		op.Responses = openapi3.NewResponses(
			openapi3.WithStatus(200, &openapi3.ResponseRef{Value: ok}),
			openapi3.WithName("default", openapi3.NewResponse().WithDescription("an error: 400, 401, 403, 404, 405 or 500").WithJSONSchemaRef(errSchema)),
		)
		doc.AddOperation(Prefix+openAPIPath(r.path), r.method, op)
	}
	return doc, nil
}

// openAPIPath turns echo's ":name" segments into "{name}".
func openAPIPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/")
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '.' || r == ':' || r == '-' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func (s *Server) openAPI(x *call) error {
	doc, err := s.OpenAPI()
	if err != nil {
		return err
	}
	return writeJSON(x, 200, doc)
}
