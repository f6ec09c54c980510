package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/metrics"
	"github.com/wsgate/wsgate/internal/telemetry"
	"github.com/wsgate/wsgate/protocol"
)

// runServe is "wsgate serve": parse the configuration, listen, serve until ctx ends, shut down.
func runServe(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	o := defaultOptions()
	fs, err := parseArgs(&o, args, env)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs)
		return nil
	}
	if err == nil {
		err = o.cluster.check()
	}
	if err != nil {
		return usageError{err}
	}
	tlsConfig, err := loadTLS(o.tlsCert, o.tlsKey)
	if err != nil {
		return usageError{err}
	}
	log := newLogger(stderr, o.logLevel, o.logFormat)
	if err := checkGateway(&o); err != nil {
		return usageError{err}
	}
	// The broker first: with a NATS cluster this waits for it, and only then does the node listen.
	be, err := newBackend(ctx, &o, log)
	if err != nil {
		if ctx.Err() != nil { // SIGINT or SIGTERM while waiting for the cluster: nothing to shut down
			log.Info("stopped before the cluster was ready", "err", err)
			return nil
		}
		return err
	}
	g, err := newGateway(ctx, &o, be, log) // checkGateway passed: what fails now is the broker's start
	if err != nil {
		return errors.Join(err, be.close(context.Background()))
	}
	// Listen before serving so that a taken port is an error of its own, before any log says "listening".
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		_ = g.hub.Close(context.Background())
		return errors.Join(err, be.close(context.Background()))
	}
	if tlsConfig != nil {
		ln, g.tls = tls.NewListener(ln, tlsConfig), true
	}
	return g.serve(ctx, ln)
}

// newAPI is the backend HTTP API over the gateway's Node, with the configured keys and extra
// ones (the admin page's).
func newAPI(gw *gateway.Gateway, cfg *gateway.Config, hubOpts *hub.Options, log *slog.Logger) (http.Handler, error) {
	keys, err := cfg.API.LoadKeys()
	if err != nil {
		return nil, err
	}
	return newAPIWithKeys(gw, cfg, hubOpts, log, keys)
}

// newAPIWithKeys is an API handler that takes keys only: the admin page's own instance gets
// the admin page's key and none of the backend's.
func newAPIWithKeys(gw *gateway.Gateway, cfg *gateway.Config, hubOpts *hub.Options, log *slog.Logger, keys []string) (http.Handler, error) {
	return api.New(gw.Node(), api.Options{Keys: keys, BasePath: cmp.Or(cfg.API.Path, api.DefaultBasePath),
		MaxDataSize: cmp.Or(hubOpts.MaxDataSize, hub.DefaultMaxDataSize), Logger: log})
}

// newAdminPage is /admin when admin.secret is set (nil otherwise), and the API key it calls
// the backend API with.
func newAdminPage(cfg *gateway.Config, log *slog.Logger) (*admin, string, error) {
	if !cfg.Admin.Enabled() {
		return nil, "", nil
	}
	secret, err := cfg.Admin.LoadSecret()
	if err != nil {
		return nil, "", err
	}
	key := newAdminKey()
	return newAdmin(secret, cmp.Or(cfg.Admin.SessionTTL, gateway.DefaultAdminSessionTTL), nil,
		cmp.Or(cfg.API.Path, api.DefaultBasePath), key, log), key, nil
}

// loadTLS reads the certificate and key for -tls-cert and -tls-key; nil if neither is set.
// Only HTTP/1.1 is offered: a WebSocket upgrade takes over the connection, which HTTP/2 cannot
// hand over (and browsers open WebSockets over HTTP/1.1 unless the server offers RFC 8441).
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("-tls-cert and -tls-key go together: give both, or neither for plain HTTP")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert %s, -tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, nil
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// node is the running server: one http.Server for the routes, one wsgate.Server for the
// WebSocket connections it hijacks (http.Server does not track those, so both are shut down).
type node struct {
	http            *http.Server
	api             *http.Server           // the backend API on its own listener (api.listen); nil otherwise
	metrics         *http.Server           // /metrics, /readyz and pprof on -metrics-listen; nil otherwise
	stopping        atomic.Bool            // shutdown has begun: /readyz answers 503
	readyCache      *metrics.Shared[error] // the broker's readiness, shared by /readyz and wsgate_ready; nil: always ready
	ws              *wsgate.Server
	hub             *hub.Hub
	gw              *gateway.Gateway
	admin           *admin             // /admin; nil without admin.secret
	backend         *backend           // the hub's broker and the embedded NATS server, if any
	tel             *telemetry.Tracing // OpenTelemetry traces; nil when off
	log             *slog.Logger
	shutdownTimeout time.Duration
	tls             bool // ln serves TLS (-tls-cert, -tls-key)

	maxHTTPConns, maxHTTPConnsPerIP int // see httpConns
}

// checkGateway refuses what newGateway would, before the broker is built.
func checkGateway(o *options) error {
	cfg := o.ws
	if err := checkEchoFits(&cfg); err != nil {
		return err
	}
	if err := checkPublicationsFit(&cfg, cmp.Or(o.hub.MaxDataSize, hub.DefaultMaxDataSize)); err != nil {
		return err
	}
	if _, err := wsgate.NewServer(nil, &cfg); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return o.gw.Check()
}

// newGateway builds the routes for o on the broker of be; it fails for a configuration wsgate
// refuses, or a broker that does not start. Nil be is the in-memory broker.
func newGateway(ctx context.Context, o *options, be *backend, log *slog.Logger) (_ *node, err error) {
	cfg := o.ws
	cfg.Logger = log
	if err := checkGateway(o); err != nil {
		return nil, err
	}
	if be == nil {
		be = &backend{broker: memory.New(&o.history)}
	}
	// Connections that negotiate wsgate.v1 get pub/sub; the others are raw and get the seed's echo.
	if !slices.Contains(cfg.Subprotocols, protocol.Subprotocol) {
		cfg.Subprotocols = append(slices.Clone(cfg.Subprotocols), protocol.Subprotocol)
	}
	gwCfg, demo, err := demoConfig(&o.gw, log)
	if err != nil {
		return nil, errors.Join(err, be.broker.Close(context.Background()))
	}
	deps := gateway.Deps{Logger: log}
	deps.Outbox, _ = be.broker.(broker.Outbox)
	if c, ok := be.broker.(broker.Cluster); ok {
		deps.Node = c.Node()
	}
	tel, err := newTracing(ctx, &o.otel, cmp.Or(o.cluster.node, deps.Node), log)
	if err != nil {
		return nil, errors.Join(err, be.broker.Close(context.Background()))
	}
	if tel != nil { // a nil *Tracing in an interface would not be nil
		deps.Tracer = tel
		defer func() {
			if err != nil {
				_ = tel.Shutdown(context.Background())
			}
		}()
	}
	gw, err := gateway.New(ctx, gwCfg, deps)
	if err != nil {
		return nil, errors.Join(err, be.broker.Close(context.Background()))
	}
	hubOpts := o.hub
	hubOpts.Logger = log
	if tel != nil {
		hubOpts.Tracer = tel
	}
	gw.HubOptions(&hubOpts)
	h, err := be.startHub(ctx, &hubOpts, log)
	if err != nil { // the broker did not start (its options are checked): the hub did not take it
		return nil, errors.Join(err, gw.Close(context.Background()), be.broker.Close(context.Background()))
	}
	if err := gw.Bind(h); err != nil {
		return nil, errors.Join(err, gw.Close(context.Background()), h.Close(context.Background()))
	}
	cfg.Admit = gw.Admit
	ws, err := wsgate.NewServer(logConns(gw.Handler(h.Handler(echoDone)), log), &cfg)
	if err != nil {
		_ = h.Close(context.Background())
		return nil, errors.Join(fmt.Errorf("invalid configuration: %w", err), gw.Close(context.Background()))
	}
	mux := http.NewServeMux()
	page := pageHandler()
	if demo != nil {
		page = demoBanner(page)
	}
	mux.Handle("GET /", page)
	mux.HandleFunc("GET /healthz", healthz)
	n := &node{ws: ws, hub: h, gw: gw, backend: be, log: log, shutdownTimeout: o.shutdownTimeout,
		maxHTTPConns: o.maxHTTPConns, maxHTTPConnsPerIP: o.maxHTTPConnsPerIP}
	if h, ok := be.broker.(broker.Health); ok {
		n.readyCache = newReadyCache(h)
	}
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /ws", ws)
	if demo != nil {
		mux.Handle("POST /demo/token", demo)
	}
	var apiServer *http.Server
	var apiRaw http.Handler // the API's own handler, unwrapped, for its counters (api.MetricsOf)
	adm, adminKey, err := newAdminPage(gwCfg, log)
	if err != nil {
		_ = h.Close(context.Background())
		return nil, errors.Join(err, gw.Close(context.Background()))
	}
	if adm != nil {
		// Client address and scheme as /ws finds them, -trusted-proxies believed.
		adm.clientAddr, adm.scheme = ws.ClientAddr, ws.Scheme
		// The admin page has an API handler of its own, which takes only the admin page's key:
		// its polls are not counted in wsgate_api_requests_total (the backend's requests), which
		// is not served at all with the API off, and its key opens nothing on the API's path.
		if adm.api, err = newAPIWithKeys(gw, gwCfg, &hubOpts, log, []string{adminKey}); err != nil {
			_ = h.Close(context.Background())
			return nil, errors.Join(err, gw.Close(context.Background()))
		}
		adm.api = traceAPI(tel, adm.api, gwCfg)
	}
	adminPage := http.Handler(adm)
	if adm == nil {
		adminPage = http.NotFoundHandler() // web/admin is served only as the admin page
	}
	for _, p := range []string{"GET /admin", "GET /admin/", "POST /admin/"} {
		mux.Handle(p, adminPage)
	}
	if gwCfg.API.Enabled() {
		ah, err := newAPI(gw, gwCfg, &hubOpts, log)
		if err != nil {
			_ = h.Close(context.Background())
			return nil, errors.Join(err, gw.Close(context.Background()))
		}
		apiRaw = ah
		ah = traceAPI(tel, ah, gwCfg)
		if gwCfg.API.Path != "" {
			// GET too, so that a GET is answered by the API (405 with Allow: POST), not the pages.
			mux.Handle("POST "+gwCfg.API.Path+"/", ah)
			mux.Handle("GET "+gwCfg.API.Path+"/", ah)
		} else {
			apiServer = &http.Server{Addr: gwCfg.API.Listen, Handler: ah, ReadHeaderTimeout: o.http.readHeader,
				ReadTimeout: o.http.read, WriteTimeout: o.http.write, IdleTimeout: o.http.idle,
				ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		}
	}
	if o.metrics {
		mh := n.metricsHandler(apiRaw)
		if o.metricsListen == "" {
			mux.Handle("GET /metrics", mh)
		} else {
			n.metrics = &http.Server{Addr: o.metricsListen, Handler: debugMux(mh, n.readyz), ReadHeaderTimeout: o.http.readHeader,
				IdleTimeout: o.http.idle, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		}
	}
	hs := &http.Server{
		Handler:           canonicalPaths(mux),
		ReadHeaderTimeout: o.http.readHeader,
		ReadTimeout:       o.http.read,
		WriteTimeout:      o.http.write,
		IdleTimeout:       o.http.idle,
		MaxHeaderBytes:    cmp.Or(cfg.MaxHeaderBytes, wsgate.DefaultMaxHeaderBytes), // net/http allows 4 KiB more; /ws answers precisely within that
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	n.http, n.api, n.admin, n.tel = hs, apiServer, adm, tel
	return n, nil
}

// serve serves on ln until ctx ends or serving fails, then shuts down; ln is closed on return.
func (g *node) serve(ctx context.Context, ln net.Listener) error {
	scheme := "http"
	if g.tls {
		scheme = "https"
	}
	g.log.Info("listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+"/")
	hc := newHTTPConns(ln, g.maxHTTPConns, g.maxHTTPConnsPerIP, g.log)
	g.http.ConnState = hc.connState
	served := make(chan error, 3)
	if g.api != nil {
		aln, err := net.Listen("tcp", g.api.Addr)
		if err != nil {
			_ = ln.Close()
			return errors.Join(fmt.Errorf("api.listen: %w", err), g.shutdown())
		}
		g.log.Info("backend API listening", "addr", aln.Addr().String())
		go func() { // owner: serve; ends when shutdown closes the listener
			if err := g.api.Serve(aln); !errors.Is(err, http.ErrServerClosed) {
				served <- err
			}
		}()
	}
	if g.metrics != nil {
		mln, err := net.Listen("tcp", g.metrics.Addr)
		if err != nil {
			_ = ln.Close()
			return errors.Join(fmt.Errorf("-metrics-listen: %w", err), g.shutdown())
		}
		g.log.Info("metrics listening", "addr", mln.Addr().String())
		go func() { // owner: serve; ends when shutdown closes the listener
			if err := g.metrics.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				served <- err
			}
		}()
	}
	go func() { // owner: serve; ends when shutdown closes the listener
		served <- g.http.Serve(hc)
	}()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	err := g.shutdown()
	if serveErr == nil {
		serveErr = <-served
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if err = errors.Join(serveErr, err); err == nil {
		g.log.Info("stopped")
	}
	return err
}

// shutdown stops accepting and closes every WebSocket connection with 1001, at the same time so that
// a slow HTTP client does not delay the WebSocket goodbyes. After shutdownTimeout what is left is cut.
func (g *node) shutdown() error {
	g.stopping.Store(true) // /readyz: 503 from now on, so that a load balancer stops sending
	g.log.Info("shutting down", "timeout", g.shutdownTimeout, "connections", g.ws.Stats().Connections)
	ctx, cancel := context.WithTimeout(context.Background(), g.shutdownTimeout)
	defer cancel()
	// Publications are refused (201) before any subscriber is closed, so that each one
	// acknowledged reaches every subscriber ahead of its 1001.
	drainErr := g.hub.Drain(ctx)
	var wg sync.WaitGroup
	var httpErr error
	wg.Go(func() { // owner: shutdown; ends by ctx at the latest
		if httpErr = g.http.Shutdown(ctx); httpErr != nil {
			_ = g.http.Close()
		}
		if g.api != nil {
			if err := g.api.Shutdown(ctx); err != nil {
				_ = g.api.Close()
			}
		}
	})
	wsErr := g.ws.Shutdown(ctx)
	wg.Wait()
	// After the connections, so that their disconnect events are queued; before the broker,
	// which holds the events' outbox.
	if err := g.gw.Close(ctx); err != nil {
		g.log.Warn("gateway: closing", "err", err)
	}
	_ = g.hub.Close(ctx) // after the connections: nothing publishes any more; closes the broker
	natsErr := g.backend.close(ctx)
	if g.tel != nil { // last: the spans of everything above; a collector that is down delays the exit by otelFlushTimeout at most
		tctx, cancel := context.WithTimeout(ctx, otelFlushTimeout)
		if err := g.tel.Shutdown(tctx); err != nil {
			g.log.Warn("telemetry: the last spans were not exported", "err", err)
		}
		cancel()
	}
	if g.metrics != nil { // last: /readyz said 503 and /metrics counted until the end
		if err := g.metrics.Shutdown(ctx); err != nil {
			_ = g.metrics.Close()
		}
	}
	if err := cmp.Or(drainErr, wsErr, httpErr, natsErr); err != nil { // all are ctx's error, if any
		return fmt.Errorf("shutdown after %v, remaining connections cut: %w", g.shutdownTimeout, err)
	}
	return nil
}

// canonicalPaths answers 404 to a request whose path is not in its clean form ("//x", "/a/../x"),
// where http.ServeMux would redirect to the clean path: its Location would echo the client's
// path back, as long as the client made it. No route of ours needs such a path.
func canonicalPaths(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if p != clean {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok")
}
