package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wsgate/wsgate/gateway/api"
)

// The test that holds api/openapi.yaml and the handlers together.

const docPath = "../../api/openapi.yaml"

func loadDoc(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", docPath, err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("%s: openapi %q, want 3.x", docPath, v)
	}
	return doc
}

// docJSON turns a value of the YAML document into JSON, and back as checkSchema reads JSON.
func docJSON(t testing.TB, v any) ([]byte, any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b, asJSON(t, b)
}

// operation is one path+method of the document.
type operation struct {
	path, method string
	op           map[string]any
}

func operations(t testing.TB, doc map[string]any) []operation {
	var ops []operation
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			ops = append(ops, operation{path, strings.ToUpper(method), op.(map[string]any)})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.path+a.method, b.path+b.method) })
	return ops
}

// response returns the documented response for status (its $ref resolved), or nil.
func response(doc map[string]any, op map[string]any, status int) map[string]any {
	r, ok := op["responses"].(map[string]any)[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return nil
	}
	if ref, ok := r["$ref"].(string); ok {
		return resolve(doc, ref)
	}
	return r
}

func jsonContent(m map[string]any) map[string]any {
	c, _ := m["content"].(map[string]any)
	j, _ := c["application/json"].(map[string]any)
	return j
}

// TestOpenAPIRoutes: every path+method of the document is a route of the API, and every route
// is in the document, as a POST.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadDoc(t)
	var documented, served []string
	for _, o := range operations(t, doc) {
		documented = append(documented, o.method+" "+o.path)
	}
	for _, r := range api.Routes() {
		served = append(served, "POST "+api.DefaultBasePath+r)
	}
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("documented:\n%v\nserved:\n%v", documented, served)
	}
}

// TestOpenAPIOperations: for every documented operation, a real request built from the
// document's example, and requests wrong in each documented way (no key, a wrong key, another
// method, another content type, an unknown field), get a status the document lists for it,
// with its documented headers and a body that matches the documented schema.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadDoc(t)
	e := newEnv(t, nil)
	for _, o := range operations(t, doc) {
		t.Run(o.method+" "+o.path, func(t *testing.T) {
			rb, _ := o.op["requestBody"].(map[string]any)
			ex, ok := jsonContent(rb)["example"]
			if !ok {
				t.Fatal("no request example")
			}
			body, _ := docJSON(t, ex)
			wantOK := e.wantStatus(o.path)
			for _, probe := range []struct {
				name   string
				method string
				body   string
				header map[string]string
				want   int
			}{
				{"the example", o.method, string(body), nil, wantOK},
				{"no key", o.method, string(body), map[string]string{"Authorization": ""}, 401},
				{"a wrong key", o.method, string(body), map[string]string{"Authorization": "apikey nope"}, 403},
				{"GET", http.MethodGet, "", nil, 405},
				{"text/plain", o.method, string(body), map[string]string{"Content-Type": "text/plain"}, 415},
				{"an unknown field", o.method, `{"no_such_field":1}`, nil, 400},
			} {
				a := e.do(probe.method, o.path, probe.body, probe.header)
				if a.status != probe.want {
					t.Errorf("%s: %d %s, want %d", probe.name, a.status, a.body, probe.want)
				}
				r := response(doc, o.op, a.status)
				if r == nil {
					t.Errorf("%s: status %d not documented", probe.name, a.status)
					continue
				}
				headers, _ := r["headers"].(map[string]any)
				for h := range headers {
					if a.header.Get(h) == "" {
						t.Errorf("%s: %d without its documented header %s", probe.name, a.status, h)
					}
				}
				if errs := checkSchema(doc, jsonContent(r)["schema"].(map[string]any), asJSON(t, a.body), "answer"); len(errs) > 0 {
					t.Errorf("%s: %d %s does not match the documented schema: %v", probe.name, a.status, a.body, errs)
				}
			}
		})
	}
}

// TestOpenAPIExamples: every example of the document matches its own schema, so what the
// document shows is what it says.
func TestOpenAPIExamples(t *testing.T) {
	doc := loadDoc(t)
	check := func(where string, media map[string]any) {
		ex, ok := media["example"]
		if !ok {
			return
		}
		_, v := docJSON(t, ex)
		if errs := checkSchema(doc, media["schema"].(map[string]any), v, where); len(errs) > 0 {
			t.Errorf("%v", errs)
		}
	}
	n := 0
	for _, o := range operations(t, doc) {
		rb, _ := o.op["requestBody"].(map[string]any)
		check(o.path+" request", jsonContent(rb))
		for code := range o.op["responses"].(map[string]any) {
			status, _ := strconv.Atoi(code)
			check(o.path+" "+code, jsonContent(response(doc, o.op, status)))
			n++
		}
	}
	if n == 0 {
		t.Fatal("no responses in the document")
	}
}
