package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkSchema reports where v (decoded with UseNumber) breaks schema, a JSON Schema of the
// subset api/openapi.yaml uses: $ref into the document, type (one or a list), required,
// properties, additionalProperties false, items, enum, const, minimum, maximum, minLength,
// maxLength, pattern, minItems, maxItems, uniqueItems. An empty schema allows anything. A
// keyword it does not know fails, so the document cannot outgrow the check unnoticed.
func checkSchema(doc map[string]any, schema map[string]any, v any, at string) []string {
	if ref, ok := schema["$ref"].(string); ok {
		return checkSchema(doc, resolve(doc, ref), v, at)
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	for k, want := range schema {
		switch k {
		case "description", "default", "example", "title":
		case "type":
			types, ok := want.([]any)
			if !ok {
				types = []any{want}
			}
			if !slicesContains(types, jsonType(v)) && !(jsonType(v) == "integer" && slicesContains(types, "number")) {
				fail("%s where %v expected", jsonType(v), want)
				return errs // the other keywords would only repeat it
			}
		case "required":
			obj, _ := v.(map[string]any)
			for _, f := range want.([]any) {
				if _, ok := obj[f.(string)]; !ok && obj != nil {
					fail("required field %q missing", f)
				}
			}
		case "properties":
			obj, _ := v.(map[string]any)
			for f, sub := range want.(map[string]any) {
				if fv, ok := obj[f]; ok {
					errs = append(errs, checkSchema(doc, sub.(map[string]any), fv, at+"."+f)...)
				}
			}
		case "additionalProperties":
			obj, _ := v.(map[string]any)
			props, _ := schema["properties"].(map[string]any)
			for f := range obj {
				if _, ok := props[f]; !ok && want == false {
					fail("field %q not in the schema", f)
				}
			}
		case "items":
			arr, _ := v.([]any)
			for i, e := range arr {
				errs = append(errs, checkSchema(doc, want.(map[string]any), e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		case "enum", "const":
			list, ok := want.([]any)
			if !ok {
				list = []any{want}
			}
			if !slicesContains(list, fmt.Sprint(v)) {
				fail("%v not one of %v", v, list)
			}
		case "minimum", "maximum":
			n, ok := v.(json.Number)
			if !ok {
				continue
			}
			x, _ := new(big.Float).SetString(n.String())
			lim := new(big.Float).SetFloat64(toFloat(want))
			if c := x.Cmp(lim); k == "minimum" && c < 0 || k == "maximum" && c > 0 {
				fail("%v beyond %s %v", n, k, want)
			}
		case "minLength", "maxLength", "pattern":
			s, ok := v.(string)
			if !ok {
				continue
			}
			n := utf8.RuneCountInString(s)
			switch {
			case k == "minLength" && n < int(toFloat(want)), k == "maxLength" && n > int(toFloat(want)):
				fail("length %d beyond %s %v", n, k, want)
			case k == "pattern" && !regexp.MustCompile(want.(string)).MatchString(s):
				fail("%q does not match %s", s, want)
			}
		case "minItems", "maxItems", "uniqueItems":
			arr, ok := v.([]any)
			if !ok {
				continue
			}
			switch {
			case k == "minItems" && len(arr) < int(toFloat(want)), k == "maxItems" && len(arr) > int(toFloat(want)):
				fail("%d items beyond %s %v", len(arr), k, want)
			case k == "uniqueItems" && want == true:
				seen := map[string]bool{}
				for _, e := range arr {
					if seen[fmt.Sprint(e)] {
						fail("%v twice", e)
					}
					seen[fmt.Sprint(e)] = true
				}
			}
		default:
			fail("schema keyword %q not known to the check", k)
		}
	}
	return errs
}

func slicesContains(list []any, s string) bool {
	for _, e := range list {
		if fmt.Sprint(e) == s {
			return true
		}
	}
	return false
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("not a number in the schema: %v", v))
}

// jsonType names v's JSON type, "integer" for a number without a fraction.
func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil || !strings.ContainsAny(x.String(), ".eE") {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// resolve follows a local $ref ("#/components/schemas/Position").
func resolve(doc map[string]any, ref string) map[string]any {
	if !strings.HasPrefix(ref, "#/") {
		panic("only local $refs: " + ref)
	}
	var cur any = doc
	for _, p := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			panic("$ref " + ref + " does not resolve")
		}
		cur = m[p]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		panic("$ref " + ref + " does not resolve")
	}
	return m
}

// asJSON decodes JSON as checkSchema wants it (numbers as json.Number).
func asJSON(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return v
}

// TestSchemaCheckFails: the check itself catches what it claims to, so a passing document
// test means something.
func TestSchemaCheckFails(t *testing.T) {
	doc := map[string]any{"components": map[string]any{"schemas": map[string]any{
		"P": map[string]any{"type": "object", "required": []any{"epoch", "offset"}, "additionalProperties": false,
			"properties": map[string]any{"epoch": map[string]any{"type": "string"}, "offset": map[string]any{"type": "integer", "minimum": 1}}},
	}}}
	ref := map[string]any{"$ref": "#/components/schemas/P"}
	for body, want := range map[string]string{
		`{"epoch":"e","offset":1}`:          "",
		`{"epoch":"e"}`:                     `required field "offset" missing`,
		`{"epoch":1,"offset":1}`:            "integer where string expected",
		`{"epoch":"e","offset":1.5}`:        "number where integer expected",
		`{"epoch":"e","offset":0}`:          "beyond minimum",
		`{"epoch":"e","offset":1,"x":true}`: `field "x" not in the schema`,
		`[]`:                                "array where object expected",
	} {
		errs := checkSchema(doc, ref, asJSON(t, []byte(body)), "$")
		if want == "" && len(errs) > 0 || want != "" && !strings.Contains(strings.Join(errs, "; "), want) {
			t.Errorf("%s: %v, want %q", body, errs, want)
		}
	}
	if errs := checkSchema(doc, map[string]any{"oneOf": []any{}}, nil, "$"); len(errs) == 0 {
		t.Error("an unknown keyword passed")
	}
}
