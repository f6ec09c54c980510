package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
)

// decode reads r's JSON body into v, strictly: a JSON content type (checked before the body is
// read; none needed without a body), at most
// maxBody bytes (413 beyond, before any byte is read when Content-Length says so), one object,
// no unknown field (400 naming it), each field of its type (400 naming it). The cost of a body
// is bounded by maxBody: reading, and one pass of encoding/json, which refuses nesting deeper
// than 10000 levels.
func (a *apiHandler) decode(r *http.Request, v any) *httpError {
	if r.ContentLength > a.maxBody {
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "body of %d bytes, limit %d", r.ContentLength, a.maxBody)
	}
	if r.ContentLength != 0 { // a body (or one of unknown length): its type before its bytes
		if e := jsonContentType(r); e != nil {
			return e
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, a.maxBody+1))
	if err != nil {
		return errorf(http.StatusBadRequest, codeBadRequest, "reading the body: %v", err)
	}
	if int64(len(body)) > a.maxBody {
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "body over the limit of %d bytes", a.maxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}") // info, and the requests whose fields are all optional, need no body
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, codeBadRequest, "body holds more than one JSON value")
	}
	return nil
}

// jsonContentType refuses (415) a body that is not application/json (a charset other than
// UTF-8 included).
func jsonContentType(r *http.Request) *httpError {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" && (params["charset"] == "" || strings.EqualFold(params["charset"], "utf-8")) {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	if len(ct) > 64 {
		ct = ct[:64] + "…"
	}
	e := errorf(http.StatusUnsupportedMediaType, codeBadRequest, "content type %q not accepted: send application/json", ct)
	e.header = http.Header{"Accept-Post": {"application/json"}}
	return e
}

// decodeError says precisely what is wrong with a body, naming the field when there is one.
func decodeError(err error) *httpError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return errorf(http.StatusBadRequest, codeBadRequest, "body is not JSON: %s (at byte %d)", strings.TrimPrefix(syn.Error(), "json: "), syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return errorf(http.StatusBadRequest, codeBadRequest, "body is JSON %s, not an object", typ.Value)
		}
		return errorf(http.StatusBadRequest, codeBadRequest, "field %q: JSON %s where %s was expected", typ.Field, typ.Value, jsonType(typ.Type.Kind().String()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, codeBadRequest, "body is not JSON: it ends too soon")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return errorf(http.StatusBadRequest, codeBadRequest, "%s (see api/openapi.yaml)", msg)
	}
	return errorf(http.StatusBadRequest, codeBadRequest, "body is not valid: %s", msg)
}

// jsonType names a Go kind as JSON does.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "uint64", "float64":
		return "a number"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return kind
}
