package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/version"
)

var (
	idType   = reflect.TypeOf(ids.ID(0))
	timeType = reflect.TypeOf(apiTime{})
)

// describeTypes gives the types with their own JSON form the schema they
// really have on the wire.
func describeTypes(_ string, t reflect.Type, _ reflect.StructTag, s *openapi3.Schema) error {
	switch t {
	case idType:
		*s = *openapi3.NewStringSchema()
		s.Pattern = `^[1-9][0-9]{0,18}$`
		s.Description = "64-bit id as a decimal string; null when unset"
		s.Nullable = true
	case timeType:
		*s = *openapi3.NewStringSchema()
		s.Description = "time as yyyy-MM-dd HH:mm:ss, or null"
		s.Nullable = true
	}
	return nil
}

// OpenAPI builds the OpenAPI 3 document of the console API from the route table.
func (a *API) OpenAPI() (*openapi3.T, error) {
	a.docOnce.Do(func() { a.doc, a.docErr = a.buildOpenAPI() })
	return a.doc, a.docErr
}

func (a *API) buildOpenAPI() (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{
			Title:       "ADMQ manager console API",
			Version:     version.Version,
			Description: codesDescription(),
		},
		Servers: openapi3.Servers{{URL: Prefix}},
		Paths:   openapi3.NewPaths(),
		Components: &openapi3.Components{
			SecuritySchemes: openapi3.SecuritySchemes{
				"bearer": &openapi3.SecuritySchemeRef{Value: openapi3.NewJWTSecurityScheme()},
			},
		},
	}
	gen := openapi3gen.NewGenerator(openapi3gen.SchemaCustomizer(describeTypes))
	schemaOf := func(v any) (*openapi3.SchemaRef, error) {
		if v == nil {
			return openapi3.NewSchemaRef("", &openapi3.Schema{Nullable: true, Description: "null"}), nil
		}
		return gen.NewSchemaRefForValue(v, nil)
	}
	errorBody := envelopeSchema(openapi3.NewSchemaRef("", &openapi3.Schema{Description: "details of the error, or null"}))
	for _, r := range a.routes {
		op := openapi3.NewOperation()
		op.Summary = r.summary
		op.OperationID = operationID(r.method, r.path)
		if r.role != "" {
			op.Security = &openapi3.SecurityRequirements{{"bearer": []string{}}}
			op.Description = fmt.Sprintf("Needs role %s or higher.", r.role)
		}
		for _, q := range r.query {
			p := openapi3.NewQueryParameter(q.name).WithDescription(q.desc)
			if q.kind == "integer" {
				p.Schema = openapi3.NewIntegerSchema().NewRef()
			} else {
				p.Schema = openapi3.NewStringSchema().NewRef()
			}
			op.AddParameter(p)
		}
		if r.multipart {
			file := openapi3.NewStringSchema().WithFormat("binary")
			file.Description = "the package file; its file name is checked"
			form := openapi3.NewObjectSchema().WithProperty("file", file)
			form.Required = []string{"file"}
			op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).WithFormDataSchema(form)}
		} else if r.body != nil {
			s, err := schemaOf(r.body)
			if err != nil {
				return nil, fmt.Errorf("schema of %s %s body: %w", r.method, r.path, err)
			}
			op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithJSONSchemaRef(s)}
		}
		var okBody *openapi3.SchemaRef
		if r.path == "/openapi.json" {
			okBody = openapi3.NewObjectSchema().NewRef()
		} else {
			data, err := schemaOf(r.data)
			if err != nil {
				return nil, fmt.Errorf("schema of %s %s data: %w", r.method, r.path, err)
			}
			okBody = envelopeSchema(data)
		}
		op.Responses = openapi3.NewResponses(
			openapi3.WithStatus(200, &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("success").WithJSONSchemaRef(okBody)}),
			openapi3.WithName("default", openapi3.NewResponse().WithDescription("an error envelope; see the code table in the description").WithJSONSchemaRef(errorBody)),
		)
		doc.AddOperation(Prefix+r.path, r.method, op)
	}
	return doc, nil
}

func envelopeSchema(data *openapi3.SchemaRef) *openapi3.SchemaRef {
	s := openapi3.NewObjectSchema().
		WithProperty("code", openapi3.NewIntegerSchema()).
		WithProperty("msg", openapi3.NewStringSchema()).
		WithProperty("message", openapi3.NewStringSchema()).
		WithPropertyRef("data", data)
	s.Required = []string{"code", "msg", "message"}
	return s.NewRef()
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '.' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func codesDescription() string {
	codes := make([]int, 0, len(codeInfo))
	for c := range codeInfo {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b strings.Builder
	b.WriteString("Every response is an envelope {code, msg, message, data}. Codes:\n\n| code | msg | HTTP |\n|---|---|---|\n")
	for _, c := range codes {
		fmt.Fprintf(&b, "| %d | %s | %d |\n", c, codeInfo[c].name, codeInfo[c].status)
	}
	return b.String()
}

func (a *API) openAPI(c echo.Context) error {
	b, err := a.docJSON()
	if err != nil {
		return err
	}
	return c.JSONBlob(200, b)
}

// encodeOpenAPI encodes the document as openAPI serves it.
func (a *API) encodeOpenAPI() ([]byte, error) {
	doc, err := a.OpenAPI()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode the OpenAPI document: %w", err)
	}
	return b, nil
}
