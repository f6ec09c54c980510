package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/protocol"
)

// The codes of the API's own answers: those of wsgate.v1 (package protocol), so that a backend
// reads one table of codes for both.
const (
	codeBadRequest   = protocol.CodeBadRequest
	codeBadChannel   = protocol.CodeBadChannel
	codeTooLarge     = protocol.CodeTooLarge
	codeForbidden    = protocol.CodeForbidden
	codeUnauthorized = protocol.CodeUnauthorized
	codeNotAvailable = protocol.CodeNotAvailable
	codeInternal     = protocol.CodeInternal
	codeUnavailable  = protocol.CodeUnavailable
	codeRateLimited  = protocol.CodeRateLimited
)

// httpError is an answer that is not a success: its status, its body's error, and headers to set.
type httpError struct {
	status int
	err    protocol.Error
	header http.Header
}

func errorf(status int, code protocol.Code, format string, args ...any) *httpError {
	return &httpError{status: status, err: protocol.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func errNotFound(path string) *httpError {
	if len(path) > 64 {
		path = path[:64] + "…"
	}
	return errorf(http.StatusNotFound, codeNotAvailable, "no endpoint at %q (see api/openapi.yaml)", path)
}

// errorBody is the JSON of every error answer: {"error":{"code":N,"message":"..."}}.
type errorBody struct {
	Error protocol.Error `json:"error"`
}

func writeError(w http.ResponseWriter, e *httpError) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	writeJSON(w, e.status, errorBody{e.err})
}

// writeJSON answers v as JSON with status. The answers are never cached and never sniffed.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // the API's own types: cannot happen, but never a half answer
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":200,"message":"api: encoding the answer failed"}}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// fromNode turns a Node's error into the answer: a *protocol.Error says its own status,
// errors.ErrUnsupported 404 (code 112), a deadline 503, anything else 500 without its text
// (logged instead: it may name internals).
func (a *apiHandler) fromNode(r *http.Request, err error) *httpError {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		e := &httpError{status: pe.HTTPStatus(), err: *pe}
		if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
			e.header = http.Header{"Retry-After": {"1"}}
		}
		return e
	case errors.Is(err, errors.ErrUnsupported):
		return errorf(http.StatusNotFound, codeNotAvailable, "not offered by this server (%s)", a.route(r))
	case errors.Is(err, context.DeadlineExceeded):
		e := errorf(http.StatusServiceUnavailable, codeUnavailable, "timed out after %v; retry later", a.opts.Timeout)
		e.header = http.Header{"Retry-After": {"1"}}
		return e
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return errorf(499, codeUnavailable, "request canceled") // the caller has gone: nobody reads it
	}
	a.opts.Logger.Error("api: request failed", "path", r.URL.Path, "err", err)
	return errorf(http.StatusInternalServerError, codeInternal, "internal error (logged by the server)")
}

// route names the endpoint of r, for a message: its path after the base.
func (a *apiHandler) route(r *http.Request) string {
	return strings.TrimPrefix(r.URL.Path, a.opts.BasePath+"/")
}
