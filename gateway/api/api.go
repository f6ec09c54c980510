package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults for Options' zero fields.
const (
	DefaultBasePath         = "/api"
	DefaultMaxDataSize      = 64 << 10 // the hub's default
	DefaultTimeout          = 10 * time.Second
	DefaultMaxInFlight      = 256
	DefaultLimit            = 100  // presence, history, channels: a page when the request gives no limit
	MaxLimit                = 1000 // the most a request may ask for in one page
	DefaultMaxBroadcast     = 1000 // channels of one broadcast
	DefaultMaxResponseBytes = 4 << 20
	// BodyOverhead is what a request body may hold beside its data: MaxBodyBytes is
	// MaxDataSize + BodyOverhead (a broadcast's channel list, the other fields).
	BodyOverhead = 1 << 20
	// MaxKeyLen bounds an idempotency key, in bytes: the hub's bound (hub.MaxPublishKeyLen).
	MaxKeyLen = 128
	// MaxUserLen bounds a user name in a request, in bytes (the hub's presence bound).
	MaxUserLen = 1024
	// MaxReasonLen bounds a disconnect reason: what a close frame can carry.
	MaxReasonLen = 123
)

// Options configure the API. Only Keys (or Insecure) must be set.
type Options struct {
	// Keys are the API keys a request may present, as "Authorization: apikey <key>" or
	// "X-API-Key: <key>" (never in the URL). Several let a key be rotated: add the new one,
	// move the backends, remove the old one. A key is 1 or more printable ASCII characters
	// (no space); New refuses an empty key, and an empty list unless Insecure.
	Keys []string
	// Insecure serves every request without a key when Keys is empty: for a listener only the
	// backend can reach, or a demo. Default false.
	Insecure bool
	// BasePath is where the endpoints are mounted: BasePath+"/publish" and so on. Default
	// "/api"; "" is taken as the default, "/" is not allowed (give "" or a path).
	BasePath string
	// MaxDataSize bounds a publication's data in bytes: give the hub's MaxDataSize. Request
	// bodies are bounded by MaxDataSize + BodyOverhead. Default 64 KiB.
	MaxDataSize int
	// Timeout bounds the Node call of one request. Default 10 s.
	Timeout time.Duration
	// MaxInFlight bounds the requests served at once; beyond, 429 with Retry-After. Default 256.
	MaxInFlight int
	// MaxBroadcast bounds the channels of one broadcast. Default 1000.
	MaxBroadcast int
	// MaxResponseBytes bounds the publications' data of one history answer: beyond it the
	// answer stops early and says more (at least one publication is always sent). Default 4 MiB.
	MaxResponseBytes int
	// Logger gets the errors answered with 500 and a warning when Insecure. Never a key.
	// Default slog.Default().
	Logger *slog.Logger
}

// Endpoints lists the paths of the API's endpoints under its base path ("/publish", ...), in
// api/openapi.yaml's order: the bounded set of names a program observing the API may use
// (a span's or a metric's), where a request's own path is whatever its sender made it.
func Endpoints() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.path
	}
	return out
}

// ErrOptions is wrapped by New's error when Options cannot work.
var ErrOptions = errors.New("api: invalid Options")

// route is one endpoint: its path under the base and its handler.
type route struct {
	path  string
	serve func(a *apiHandler, w http.ResponseWriter, r *http.Request) *httpError
}

type apiHandler struct {
	node     Node
	opts     Options
	keys     keyring
	maxBody  int64
	inflight chan struct{}                             // a token per request served
	byPath   map[string]int                            // the index of a path's route, in routes and in Endpoints
	counts   [][len(MetricsStatuses) + 1]atomic.Uint64 // by endpoint (MetricsEndpoints), then status; metrics.go
	nanos    []atomic.Uint64                           // the requests' total time, by endpoint (MetricsEndpoints)
}

// New returns the API's handler over node. It refuses (an error wrapping ErrOptions) Options
// without a key unless Insecure, and keys that cannot be sent in a header.
func New(node Node, opts Options) (http.Handler, error) {
	if node == nil {
		return nil, fmt.Errorf("%w: a Node is required", ErrOptions)
	}
	o, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	keys, err := newKeyring(o.Keys)
	if err != nil {
		return nil, err
	}
	if keys.empty() {
		if !o.Insecure {
			return nil, fmt.Errorf("%w: no API key (set Keys, or Insecure to serve anyone who can reach the listener)", ErrOptions)
		}
		o.Logger.Warn("api: INSECURE: the HTTP API accepts every request without a key", "base", o.BasePath)
	}
	a := &apiHandler{node: node, opts: o, keys: keys, maxBody: int64(o.MaxDataSize) + BodyOverhead,
		inflight: make(chan struct{}, o.MaxInFlight), byPath: map[string]int{},
		counts: make([][len(MetricsStatuses) + 1]atomic.Uint64, len(MetricsEndpoints)),
		nanos:  make([]atomic.Uint64, len(MetricsEndpoints))}
	for i, rt := range routes {
		a.byPath[o.BasePath+rt.path] = i
	}
	return a, nil
}

func withDefaults(o Options) (Options, error) {
	if o.MaxDataSize < 0 || o.Timeout < 0 || o.MaxInFlight < 0 || o.MaxBroadcast < 0 || o.MaxResponseBytes < 0 {
		return o, fmt.Errorf("%w: fields must not be negative", ErrOptions)
	}
	if o.BasePath == "" {
		o.BasePath = DefaultBasePath
	}
	if !strings.HasPrefix(o.BasePath, "/") || strings.HasSuffix(o.BasePath, "/") {
		return o, fmt.Errorf("%w: BasePath %q must start with / and not end with one", ErrOptions, o.BasePath)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxDataSize, DefaultMaxDataSize)
	def(&o.MaxInFlight, DefaultMaxInFlight)
	def(&o.MaxBroadcast, DefaultMaxBroadcast)
	def(&o.MaxResponseBytes, DefaultMaxResponseBytes)
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// ServeHTTP answers in this order, so that a caller without a key learns nothing but the routes
// (which api/openapi.yaml publishes anyway), and no body is read before the key is checked:
// 404 unknown path, 401/403/400 key, 405 method, 400 query string, 429 too many in flight,
// 413 body size, 415 content type, 413 body size again as it is read, 400 body, then the
// endpoint.
func (a *apiHandler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now() // its monotonic reading times the request: metrics.go
	ri, ok := a.byPath[r.URL.Path]
	if !ok {
		writeError(rw, errNotFound(r.URL.Path))
		a.count(len(routes), http.StatusNotFound, start)
		return
	}
	w := &statusWriter{ResponseWriter: rw}
	defer func() { a.count(ri, w.status, start) }()
	rt := routes[ri]
	if e := a.authenticate(r); e != nil {
		writeError(w, e)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, errorf(http.StatusMethodNotAllowed, codeBadRequest, "method %s not allowed: every endpoint takes POST", r.Method))
		return
	}
	if r.URL.RawQuery != "" {
		writeError(w, errorf(http.StatusBadRequest, codeBadRequest, "a query string is not accepted: the JSON body carries the request"))
		return
	}
	select {
	case a.inflight <- struct{}{}:
		defer func() { <-a.inflight }()
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, errorf(http.StatusTooManyRequests, codeRateLimited, "more than %d requests in flight; retry later", a.opts.MaxInFlight))
		return
	}
	if e := rt.serve(a, w, r); e != nil {
		writeError(w, e)
	}
}

// ctx bounds a Node call by Options.Timeout and the request's own context.
func (a *apiHandler) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.opts.Timeout)
}
