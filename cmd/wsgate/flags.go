package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/natsserver"
)

// options is everything "wsgate serve" needs. defaultOptions fills it, the config file
// overrides that, the environment the file, and flags all of them (flags > env > file > defaults).
type options struct {
	addr            string
	tlsCert, tlsKey string // PEM files; both set: serve https:// and wss://
	logLevel        slog.Level
	logFormat       string // "text" or "json"
	shutdownTimeout time.Duration
	ws              wsgate.Config  // Logger is set from logLevel and logFormat
	hub             hub.Options    // the wsgate.v1 pub/sub layer
	history         memory.Options // the in-memory broker's history; its size, TTL and bytes map onto NATS
	cluster         clusterOptions // NATS: an external cluster (-nats) or the embedded one (-cluster-listen)
	http            httpTimeouts   // readHeader and idle are flags; tests shorten the others
	// The sockets of the HTTP side (see httpConns): all of them, and per client address.
	maxHTTPConns, maxHTTPConnsPerIP int

	configFile string            // -config: YAML file of settings
	gwSet      map[string]string // the gateway flags given (or their variables), by file key
	gw         gateway.Config    // the gateway: file sections, env secrets, gateway flags

	metrics       bool        // serve /metrics (Prometheus)
	metricsListen string      // its own listener, with pprof; "": /metrics on -addr, no pprof
	otel          otelOptions // OpenTelemetry traces: off without an endpoint
}

// httpTimeouts bound the plain HTTP side of the server (the page, /healthz, the upgrade request).
// They do not reach WebSocket connections: net/http clears a connection's deadlines when it is
// hijacked, and wsgate sets its own from then on.
type httpTimeouts struct {
	readHeader, read, write, idle time.Duration
}

// Defaults of the HTTP side. A browser sends its request at once and reuses an idle connection
// within a page load: 3 s for the request's headers (a TLS handshake included) and 5 s idle spare
// the sockets that Go's defaults (none, and 60 s) let anyone hold. 4,096 sockets that are not
// WebSockets leave room for a reconnect storm's handshakes, and idle ones give way when it is full.
const (
	defaultHTTPReadHeaderTimeout = 3 * time.Second
	defaultHTTPIdleTimeout       = 5 * time.Second
	defaultMaxHTTPConns          = 4096
)

func defaultOptions() options {
	return options{
		addr:            ":8080",
		logLevel:        slog.LevelInfo,
		logFormat:       "text",
		shutdownTimeout: 10 * time.Second,
		ws: wsgate.Config{
			ReadLimit:         wsgate.DefaultReadLimit,
			SendQueueMessages: wsgate.DefaultSendQueueMessages,
			SendQueueBytes:    wsgate.DefaultSendQueueBytes,
			SlowConsumer:      wsgate.PolicyClose,
			PingInterval:      wsgate.DefaultPingInterval,
			PongTimeout:       wsgate.DefaultPongTimeout,
			WriteTimeout:      wsgate.DefaultWriteTimeout,
			HandshakeTimeout:  wsgate.DefaultHandshakeTimeout,
			CloseTimeout:      wsgate.DefaultCloseTimeout,
			MessageTimeout:    wsgate.DefaultMessageTimeout,
			ParkAfter:         wsgate.DefaultParkAfter,
			MaxReaders:        wsgate.DefaultMaxReaders,
			MaxHeaderBytes:    wsgate.DefaultMaxHeaderBytes,
			KeepHeaders:       wsgate.DefaultKeepHeaders,
		},
		hub: hub.Options{MaxSubscriptions: hub.DefaultMaxSubscriptions, MaxDataSize: hub.DefaultMaxDataSize, PingInterval: hub.DefaultPingInterval,
			RequestRate: hub.DefaultRequestRate, PresenceTTL: hub.DefaultPresenceTTL},
		history: memory.Options{HistorySize: memory.DefaultHistorySize, HistoryTTL: memory.DefaultHistoryTTL,
			MaxChannels: memory.DefaultMaxChannels, MaxBytes: memory.DefaultMaxBytes},
		http: httpTimeouts{readHeader: defaultHTTPReadHeaderTimeout, read: 15 * time.Second, write: 15 * time.Second,
			idle: defaultHTTPIdleTimeout},
		maxHTTPConns: defaultMaxHTTPConns,
		cluster:      clusterOptions{name: natsserver.DefaultClusterName},
		metrics:      true,
		otel:         otelOptions{sampleRatio: defaultOtelSampleRatio},
	}
}

// newFlagSet returns the serve flags bound to o; o's current values are the defaults shown. The
// set prints nothing itself: parse errors are returned, usage is written by printUsage.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("wsgate serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := &o.ws

	fs.StringVar(&o.addr, "addr", o.addr, "`address` to listen on, host:port")
	fs.StringVar(&o.tlsCert, "tls-cert", o.tlsCert, "certificate chain `file` (PEM): with -tls-key, serve HTTPS and wss:// instead of HTTP and ws://")
	fs.StringVar(&o.tlsKey, "tls-key", o.tlsKey, "private key `file` (PEM) of -tls-cert")
	fs.Var(newValue(&o.logLevel, parseLogLevel, formatLogLevel), "log-level", "log `level`: debug, info, warn or error (debug logs every connection's open and close)")
	fs.Var(newValue(&o.logFormat, parseLogFormat, identity), "log-format", "log `format`: text or json")
	fs.Var(newValue(&o.shutdownTimeout, parseTimeout, time.Duration.String), "shutdown-timeout", "on SIGINT/SIGTERM, how long connections get to close (code 1001) before they are cut")

	fs.Var(newValue(&c.ReadLimit, parseCount, strconv.Itoa), "read-limit", "largest message a peer may send, in `bytes`, after decompression; bigger closes with 1009")
	fs.Var(newValue(&c.SendQueueMessages, parseCount, strconv.Itoa), "send-queue-messages", "most `messages` queued for one connection and not yet written")
	fs.Var(newValue(&c.SendQueueBytes, parseCount, strconv.Itoa), "send-queue-bytes", "most payload `bytes` queued for one connection and not yet written")
	fs.Var(newValue(&c.SlowConsumer, wsgate.ParseSlowConsumerPolicy, wsgate.SlowConsumerPolicy.String), "slow-consumer", "`policy` when a connection's send queue is full: close (the connection, with 1013 slow consumer: the client may reconnect), drop-newest or drop-oldest")
	fs.Var(newValue(&c.PingInterval, time.ParseDuration, time.Duration.String), "ping-interval", "how long a connection may stay silent before it is pinged; negative disables heartbeats")
	fs.Var(newValue(&c.PongTimeout, parseTimeout, time.Duration.String), "pong-timeout", "how long a pinged peer has to answer before it is disconnected")
	fs.Var(newValue(&c.WriteTimeout, parseTimeout, time.Duration.String), "write-timeout", "how long a write may wait for a peer that does not read before it is disconnected")
	fs.Var(newValue(&c.HandshakeTimeout, parseTimeout, time.Duration.String), "handshake-timeout", "bound on writing the upgrade response")
	fs.Var(newValue(&c.CloseTimeout, parseTimeout, time.Duration.String), "close-timeout", "how long the server waits for the peer's close frame after sending its own")
	fs.Var(newValue(&c.MessageTimeout, time.ParseDuration, time.Duration.String), "message-timeout", "how long a peer may take to send one message, first byte to last frame, before it is closed with 1008; negative: no limit")
	fs.Var(newValue(&c.ParkAfter, time.ParseDuration, time.Duration.String), "park-after", "how long a connection may complete no frame before it is parked: no goroutine and no read buffer until the peer sends again (Linux, plain TCP; docs/RUNTIME.md); negative never parks")
	fs.Var(newValue(&c.MaxReaders, strconv.Atoi, strconv.Itoa), "max-readers", "most reader `goroutines` that woken (parked) connections hold at once; beyond, a woken connection waits its turn and readers park theirs after each message (docs/RUNTIME.md); negative: no bound")
	fs.Var(newValue(&c.AllowedOrigins, parseList, formatList), "allowed-origins", "comma-separated browser `origins` allowed to connect: hosts (example.com, *.example.com) or full origins (https://app.example.com); \"*\" allows any. Empty: same origin only")
	fs.Var(newValue(&c.Subprotocols, parseList, formatList), "subprotocols", "comma-separated `subprotocols` the server speaks, in order of preference")
	fs.BoolVar(&c.Compression, "compression", c.Compression, "enable permessage-deflate for messages of 512 bytes and more (costs CPU and memory per connection)")
	fs.Var(newValue(&c.MaxConnections, parseCount, strconv.Itoa), "max-connections", "cap on live connections, further upgrades get 503; 0 means no cap")
	fs.Var(newValue(&c.MaxHandshakeRate, parseCount, strconv.Itoa), "max-handshake-rate", "cap on WebSocket upgrades per `second` across all clients, with a burst of as many; beyond, 503 with Retry-After (the seconds until the client's place in the queue), so that a reconnect storm is spread instead of timing out; 0 means no cap")
	fs.Var(newValue(&c.MaxConnectionsPerIP, parseCount, strconv.Itoa), "max-connections-per-ip", "cap on live WebSocket connections from one client address (IPv4, or IPv6 /64; behind -trusted-proxies the client's), further upgrades get 429; 0 means no cap (behind an untrusted proxy everyone shares its address)")
	fs.Var(newValue(&c.MaxHeaderBytes, parseCount, strconv.Itoa), "max-header-bytes", "largest request, in `bytes`: target plus headers (each counted as name, value and 32); a bigger /ws request gets 414 or 431, any other 431 beyond this plus 4 KiB")
	fs.Var(newValue(&c.AllowedHosts, parseList, formatList), "allowed-hosts", "comma-separated `hosts` this server answers to as /ws (example.com, *.example.com, localhost:8080); others get 403. Empty: any host, which lets a DNS-rebinding page pass the same-origin check: set it")
	fs.Var(newValue(&c.TrustedProxies, parseList, formatList), "trusted-proxies", "comma-separated `addresses` or CIDR prefixes of reverse proxies whose X-Forwarded-Proto and X-Forwarded-For are believed. Empty: none")
	fs.Var(newValue(&c.KeepHeaders, parseList, formatList), "keep-headers", "comma-separated request `headers` a connection keeps for its life (what the application reads); \"*\" keeps all")

	fs.Var(newValue(&o.maxHTTPConns, parseCount, strconv.Itoa), "max-http-connections", "cap on `sockets` that are not WebSockets (page and health requests, idle keep-alives, handshakes); at the cap the longest idle keep-alive is closed for a new one, or else the new one is; 0 means no cap. The process holds at most this plus -max-connections")
	fs.Var(newValue(&o.maxHTTPConnsPerIP, parseCount, strconv.Itoa), "max-http-connections-per-ip", "cap on those `sockets` from one client address (IPv4, or IPv6 /64); more are closed at accept; 0 means no cap (behind a proxy everyone shares its address)")
	fs.Var(newValue(&o.http.readHeader, parseTimeout, time.Duration.String), "http-read-header-timeout", "how long a new connection has to send its request's headers (TLS handshake included)")
	fs.Var(newValue(&o.http.idle, parseTimeout, time.Duration.String), "http-idle-timeout", "how long an HTTP keep-alive connection may wait for its next request")

	fs.Var(newValue(&o.history.HistorySize, parseCount, strconv.Itoa), "history-size", "wsgate.v1: `publications` kept per channel for history and recovery after a reconnect")
	fs.Var(newValue(&o.history.HistoryTTL, parseTimeout, time.Duration.String), "history-ttl", "wsgate.v1: how long a publication is kept for history and recovery")
	fs.Var(newValue(&o.history.MaxChannels, parseCount, strconv.Itoa), "history-max-channels", "wsgate.v1: most `channels` with history or subscribers kept at once; beyond, the least recently published without subscribers is forgotten (error 202 only when every one has subscribers). In memory only: NATS bounds history by -history-max-bytes")
	fs.Var(newValue(&o.history.MaxBytes, parseBytes64, formatInt64), "history-max-bytes", "wsgate.v1: most `bytes` of history kept in all channels; beyond, the oldest history makes room (error 202 only when none can)")
	fs.Var(newValue(&o.hub.RequestRate, parseRate, formatRate), "request-rate", "wsgate.v1: requests a connection may make per `second` on average; beyond, error 203; negative disables")
	fs.Var(newValue(&o.hub.RequestBurst, parseCount, strconv.Itoa), "request-burst", "wsgate.v1: requests a connection may make at once beyond -request-rate; 0 means 2 × -max-subscriptions or -request-rate, whichever is more")
	fs.Var(newValue(&o.hub.MaxSubscriptions, parseCount, strconv.Itoa), "max-subscriptions", "wsgate.v1: most channels one connection may subscribe to")
	fs.Var(newValue(&o.hub.MaxDataSize, parseCount, strconv.Itoa), "max-data-size", "wsgate.v1: largest publication data, in `bytes`")
	fs.Var(newValue(&o.hub.PingInterval, time.ParseDuration, time.Duration.String), "ping-push-interval", "wsgate.v1: period of the {\"push\":\"ping\"} by which browsers notice a dead link; negative disables")

	cl := &o.cluster
	fs.Var(newValue(&cl.natsURLs, parseList, formatList), "nats", "comma-separated nats:// `URLs` of an external NATS cluster with JetStream: publications, history and presence go through it, so several wsgate nodes serve the same channels. Not with -cluster-listen. Neither: one node, in memory")
	fs.StringVar(&cl.listen, "cluster-listen", cl.listen, "the `host:port` of the route listener of an embedded NATS server with JetStream: each wsgate node runs one, and with -cluster-peers they form a cluster with nothing else to install")
	fs.Var(newValue(&cl.peers, parseList, formatList), "cluster-peers", "the other nodes' -cluster-listen: comma-separated `host:port` route addresses")
	fs.StringVar(&cl.name, "cluster-name", cl.name, "`name` of the embedded cluster; every node of one cluster gives the same")
	fs.StringVar(&cl.dataDir, "data-dir", cl.dataDir, "`directory` of the embedded server's JetStream store (history), locked while the node runs: each node needs its own, and a restarted node finds its store there. Default: wsgate/NODE in the user cache directory ($XDG_CACHE_HOME or ~/.cache on Linux), else ./wsgate-data/NODE")
	fs.StringVar(&cl.natsListen, "nats-listen", cl.natsListen, "the `host:port` of the embedded NATS server's client port, for operators and the nats CLI (the node's broker connects in process). Default: a random port on 127.0.0.1, logged as the nats of \"joined cluster\"")
	fs.StringVar(&cl.node, "node", cl.node, "`name` of this node in the cluster, unique among its peers and the same across restarts. Default: host name and the port of -cluster-listen, else of -addr (HOST-PORT)")
	fs.Var(newValue(&cl.replicas, parseCount, strconv.Itoa), "replicas", "copies of the history that NATS JetStream keeps, on as many nodes; a majority must be up to publish. 0 means 1 with -nats, and with -cluster-listen 3, or 1 plus the peers if fewer")
	fs.Var(newValue(&o.hub.PresenceTTL, parseTimeout, time.Duration.String), "presence-ttl", "with NATS: how soon the clients of a node that died leave the presence lists of the others")
	fs.BoolVar(&o.metrics, "metrics", o.metrics, "serve Prometheus metrics at /metrics (docs/METRICS.md): on -addr, or on -metrics-listen")
	fs.StringVar(&o.metricsListen, "metrics-listen", o.metricsListen, "`host:port` of a listener of its own for /metrics, pprof (/debug/pprof/) and /readyz: /metrics is then not on -addr, /readyz stays on -addr too (load balancers probe it there), and pprof is only ever here. Empty: /metrics on -addr, public (set this to a private address in production), and no pprof anywhere")
	addGatewayFlags(fs, o)
	addOtelFlags(fs, o)
	return fs
}

// parseArgs fills o from args, env and the config file (-config or WSGATE_CONFIG); the errors
// it returns are usage errors, each naming its flag, variable or key.
func parseArgs(o *options, args []string, env func(string) string) (*flag.FlagSet, error) {
	fs := newFlagSet(o)
	if err := fs.Parse(args); err != nil {
		return fs, err
	}
	if fs.NArg() > 0 {
		return fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := applyEnv(fs, env); err != nil {
		return fs, err
	}
	var fileTree map[string]any
	if o.configFile != "" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		fs.VisitAll(func(f *flag.Flag) {
			if env(envName(f.Name)) != "" {
				set[f.Name] = true
			}
		})
		var fileErr error
		if fileTree, fileErr = applyFile(fs, o.configFile, set); fileTree == nil {
			return fs, fileErr
		}
		gw, err := gatewayConfig(fileTree, o, env)
		o.setGateway(gw)
		return fs, errors.Join(fileErr, err) // every error of the file at once
	}
	gw, err := gatewayConfig(fileTree, o, env)
	o.setGateway(gw)
	return fs, err
}

// setGateway keeps the gateway's config, and gives the broker its namespaces' history bounds.
func (o *options) setGateway(gw gateway.Config) {
	o.gw = gw
	o.history.Namespaces = gw.BrokerNamespaces(o.history.HistorySize)
}

// envName is the environment variable that sets a flag: -read-limit is WSGATE_READ_LIMIT.
func envName(flagName string) string {
	return "WSGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its environment variable, if that is
// not empty. It reports every bad variable, naming it, its flag and its value.
func applyEnv(fs *flag.FlagSet, env func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := env(name)
		if given[f.Name] || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for env %s (flag -%s): %v", v, name, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// printUsage documents every flag with its type, default and environment variable.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: wsgate [serve] [flags]

Serves the demo page at /, WebSocket connections at /ws (each message is answered
"<message> done" in the same frame type) and a health check at /healthz (200 "ok").
SIGINT or SIGTERM shuts down gracefully: connections are closed with code 1001.

One node keeps its channels in memory. Several nodes share them through NATS JetStream:
either an external NATS cluster (-nats nats://n1:4222,nats://n2:4222) or a NATS server
that each node embeds, clustered with the others (-cluster-listen host:6222
-cluster-peers n2:6222,n3:6222): three such nodes keep serving when one dies.

Every flag can also be set by an environment variable: WSGATE_ and the flag name in
upper snake case, e.g. WSGATE_READ_LIMIT=1048576 for -read-limit, and in the YAML file
of -config by its name ("read-limit: 1048576"). The gateway's settings (auth, channels,
namespaces, user_channels, backend, limits, api, demo, admin) are sections of that file; the
most used are flags too. A flag given on the command line wins over the environment, the
environment over the file; an empty variable counts as unset. Secrets come from the
environment or files only: WSGATE_JWT_HMAC_SECRET, WSGATE_API_KEY, WSGATE_ADMIN_SECRET.
Durations are written like 10s, 1m30s or 500ms. docs/CONFIG.md lists every setting;
"wsgate config check FILE" checks a file; "wsgate token -user alice" mints a token.

Flags:
`)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if typ == "value" { // a flag.Value without a `name` in its usage: say what it takes
			switch v := f.Value.(type) {
			case *value[time.Duration]:
				typ = "duration"
			case *value[int]:
				typ = "int"
			case *gatewayValue:
				typ = "value"
				if v.bool {
					typ = ""
				}
			default:
				typ = "string"
			}
		}
		if typ != "" {
			typ = " " + typ
		}
		fmt.Fprintf(w, "  -%s%s\n    \t%s", f.Name, typ, usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "\n    \tenv %s\n", envName(f.Name))
	})
}

// value is a flag.Value of any type, parsed and formatted by the functions it holds.
type value[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
}

func parseBytes64(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, errors.New("want a positive number of bytes")
	}
	return n, nil
}

func formatInt64(n int64) string { return strconv.FormatInt(n, 10) }

func parseRate(s string) (float64, error) {
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r == 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return 0, errors.New("want a number of requests a second, not 0 (negative disables)")
	}
	return r, nil
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }

func newValue[T any](p *T, parse func(string) (T, error), format func(T) string) *value[T] {
	return &value[T]{p: p, parse: parse, format: format}
}

func (v *value[T]) String() string {
	if v == nil || v.p == nil { // flag's zero-value probe
		return ""
	}
	return v.format(*v.p)
}

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

// parseCount parses a non-negative whole number, parseTimeout a non-negative duration.
var (
	parseCount   = nonNegative(strconv.Atoi, "not a whole number")
	parseTimeout = nonNegative(time.ParseDuration, "not a duration (write it like 10s or 500ms)")
)

// nonNegative wraps parse to refuse negative values and to word its errors for a person.
func nonNegative[T int | time.Duration](parse func(string) (T, error), want string) func(string) (T, error) {
	return func(s string) (T, error) {
		v, err := parse(s)
		if err != nil {
			return 0, errors.New(want)
		}
		if v < 0 {
			return 0, errors.New("must not be negative")
		}
		return v, nil
	}
}

// parseList splits a comma-separated list, dropping blanks: "" is the empty list.
func parseList(s string) ([]string, error) {
	var l []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			l = append(l, e)
		}
	}
	return l, nil
}

func formatList(l []string) string { return strings.Join(l, ",") }

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

func parseLogLevel(s string) (slog.Level, error) {
	if l, ok := logLevels[strings.ToLower(s)]; ok {
		return l, nil
	}
	return 0, errors.New("want debug, info, warn or error")
}

func formatLogLevel(l slog.Level) string { return strings.ToLower(l.String()) }

func parseLogFormat(s string) (string, error) {
	if s != "text" && s != "json" {
		return "", errors.New("want text or json")
	}
	return s, nil
}

func identity(s string) string { return s }
