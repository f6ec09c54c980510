package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/hub"
)

func TestBadValuesAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string // all in the message
	}{
		{args: []string{"-read-limit", "abc"}, want: []string{"-read-limit", `"abc"`, "not a whole number"}},
		{args: []string{"-send-queue-bytes=-1"}, want: []string{"-send-queue-bytes", `"-1"`, "negative"}},
		{args: []string{"-max-connections", "1.5"}, want: []string{"-max-connections", `"1.5"`}},
		{args: []string{"-pong-timeout", "ten"}, want: []string{"-pong-timeout", `"ten"`, "not a duration"}},
		{args: []string{"-close-timeout", "-1s"}, want: []string{"-close-timeout", `"-1s"`, "negative"}},
		{args: []string{"-slow-consumer", "panic"}, want: []string{"-slow-consumer", `"panic"`, "drop-oldest"}},
		{args: []string{"-log-level", "loud"}, want: []string{"-log-level", `"loud"`, "debug, info, warn or error"}},
		{args: []string{"-log-format", "xml"}, want: []string{"-log-format", `"xml"`, "text or json"}},
		{args: []string{"-compression=maybe"}, want: []string{"-compression", `"maybe"`}},
		{args: []string{"-no-such-flag"}, want: []string{"-no-such-flag"}},
		{args: []string{"serve", "extra"}, want: []string{`unexpected argument "extra"`}},
		{args: []string{"-allowed-origins", "[bad"}, want: []string{"invalid configuration", `"[bad"`}},
		{args: []string{"-subprotocols", `a"b`}, want: []string{"invalid configuration", `a\"b`}},
		{args: []string{"-trusted-proxies", "proxy.example"}, want: []string{"invalid configuration", `"proxy.example"`}},
		{args: []string{"-allowed-hosts", "[x"}, want: []string{"invalid configuration", `"[x"`}},
		{args: []string{"-read-limit", "1000"}, env: map[string]string{"WSGATE_SEND_QUEUE_BYTES": "1004"},
			want: []string{"-send-queue-bytes 1004", "-read-limit 1000"}},
		{args: []string{"-read-limit", "1048576"}, want: []string{"-send-queue-bytes 1048576"}},
		{env: map[string]string{"WSGATE_READ_LIMIT": "lots"}, want: []string{"WSGATE_READ_LIMIT", `"lots"`, "-read-limit"}},
		{args: []string{"-nats", "nats://a:4222", "-cluster-listen", ":6222", "-cluster-peers", "b:6222"}, want: []string{"-nats and -cluster-listen exclude each other"}},
		{args: []string{"-cluster-peers", "b:6222"}, want: []string{"-cluster-peers needs -cluster-listen"}},
		{args: []string{"-nats", "nats://a:4222", "-data-dir", "/tmp/x"}, want: []string{"-data-dir needs -cluster-listen"}},
		{args: []string{"-nats-listen", ":4222"}, want: []string{"-nats-listen needs -cluster-listen"}},
		{args: []string{"-replicas", "3"}, want: []string{"-replicas needs -nats or -cluster-listen"}},
		{args: []string{"-cluster-listen", ":6222"}, want: []string{"-cluster-listen needs -cluster-peers"}},
		{args: []string{"-cluster-listen", ":6222", "-cluster-peers", "b:6222", "-replicas", "3"}, want: []string{"-replicas 3", "names 1"}},
		{args: []string{"-cluster-listen", "6222", "-cluster-peers", "b:6222"}, want: []string{`"6222"`, "host:port"}},
		{args: []string{"-nats", "a:4222"}, want: []string{`-nats "a:4222"`, "nats://"}},
		{env: map[string]string{"WSGATE_PRESENCE_TTL": "-1s"}, want: []string{"WSGATE_PRESENCE_TTL", "negative"}},
		{args: []string{"-otel-endpoint", "collector:4318"}, want: []string{"-otel-endpoint", `"collector:4318"`, "http://"}},
		{env: map[string]string{"WSGATE_OTEL_SAMPLE_RATIO": "1.5"}, want: []string{"WSGATE_OTEL_SAMPLE_RATIO", "0 to 1"}},
		{env: map[string]string{"WSGATE_PING_INTERVAL": "soon", "WSGATE_SLOW_CONSUMER": "x"},
			want: []string{"WSGATE_PING_INTERVAL", `"soon"`, "WSGATE_SLOW_CONSUMER", `"x"`}},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, envOf(tc.env), &stdout, &stderr)
		if code := exitCode(err); code != 2 {
			t.Errorf("run(%q, env %v) = %v, exit %d; want a usage error, exit 2", tc.args, tc.env, err, code)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("run(%q, env %v) error %q does not mention %q", tc.args, tc.env, err, w)
			}
		}
		if stdout.Len()+stderr.Len() > 0 {
			t.Errorf("run(%q) wrote output on a usage error; main reports it: stdout %q stderr %q", tc.args, &stdout, &stderr)
		}
	}
}

func TestDefaultsAreWsgateDefaults(t *testing.T) {
	o := defaultOptions()
	if _, err := parseArgs(&o, nil, noEnv); err != nil {
		t.Fatal(err)
	}
	want := defaultOptions()
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("no flags and no env changed the options:\n got %+v\nwant %+v", o, want)
	}
	if o.addr != ":8080" || o.shutdownTimeout != 10*time.Second || o.logLevel != slog.LevelInfo || o.logFormat != "text" ||
		o.maxHTTPConns != 4096 || o.maxHTTPConnsPerIP != 0 || o.http.readHeader != 3*time.Second || o.http.idle != 5*time.Second {
		t.Errorf("binary defaults: %+v", o)
	}
	c := o.ws
	if c.ReadLimit != wsgate.DefaultReadLimit || c.SendQueueMessages != wsgate.DefaultSendQueueMessages ||
		c.SendQueueBytes != wsgate.DefaultSendQueueBytes || c.PingInterval != wsgate.DefaultPingInterval ||
		c.PongTimeout != wsgate.DefaultPongTimeout || c.WriteTimeout != wsgate.DefaultWriteTimeout ||
		c.HandshakeTimeout != wsgate.DefaultHandshakeTimeout || c.CloseTimeout != wsgate.DefaultCloseTimeout ||
		c.MessageTimeout != wsgate.DefaultMessageTimeout ||
		c.SlowConsumer != wsgate.PolicyClose || c.Compression || c.MaxConnections != 0 ||
		c.AllowedOrigins != nil || c.Subprotocols != nil || c.MaxHeaderBytes != wsgate.DefaultMaxHeaderBytes ||
		!slices.Equal(c.KeepHeaders, wsgate.DefaultKeepHeaders) || c.AllowedHosts != nil || c.TrustedProxies != nil || c.MaxConnectionsPerIP != 0 {
		t.Errorf("wsgate defaults not shown as flag defaults: %+v", c)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	env := map[string]string{
		"WSGATE_ADDR":                        "127.0.0.1:9999",
		"WSGATE_READ_LIMIT":                  "1000", // overridden by the flag
		"WSGATE_SEND_QUEUE_MESSAGES":         "7",
		"WSGATE_SEND_QUEUE_BYTES":            "4096",
		"WSGATE_SLOW_CONSUMER":               "drop-oldest",
		"WSGATE_PING_INTERVAL":               "-1s",
		"WSGATE_PONG_TIMEOUT":                "3s",
		"WSGATE_WRITE_TIMEOUT":               "4s",
		"WSGATE_HANDSHAKE_TIMEOUT":           "1s",
		"WSGATE_CLOSE_TIMEOUT":               "2s",
		"WSGATE_MESSAGE_TIMEOUT":             "-1s",
		"WSGATE_ALLOWED_ORIGINS":             " example.com, https://app.example.com ,,",
		"WSGATE_SUBPROTOCOLS":                "wsgate.v1",
		"WSGATE_COMPRESSION":                 "true", // overridden by the flag
		"WSGATE_MAX_CONNECTIONS":             "100",
		"WSGATE_MAX_HEADER_BYTES":            "8192",
		"WSGATE_PARK_AFTER":                  "-1s",
		"WSGATE_MAX_READERS":                 "-1",
		"WSGATE_KEEP_HEADERS":                "Cookie,X-User",
		"WSGATE_ALLOWED_HOSTS":               "example.com,*.example.com",
		"WSGATE_TRUSTED_PROXIES":             "10.0.0.0/8",
		"WSGATE_MAX_CONNECTIONS_PER_IP":      "5",
		"WSGATE_MAX_HTTP_CONNECTIONS":        "100",
		"WSGATE_MAX_HTTP_CONNECTIONS_PER_IP": "10",
		"WSGATE_HTTP_READ_HEADER_TIMEOUT":    "1s",
		"WSGATE_HTTP_IDLE_TIMEOUT":           "2s",
		"WSGATE_LOG_LEVEL":                   "DEBUG",
		"WSGATE_LOG_FORMAT":                  "json",
		"WSGATE_SHUTDOWN_TIMEOUT":            "30s",
		"WSGATE_NATS":                        "nats://a:4222, nats://b:4222",
		"WSGATE_NODE":                        "n1",
		"WSGATE_REPLICAS":                    "3",
		"WSGATE_PRESENCE_TTL":                "2s",
		"WSGATE_CLUSTER_NAME":                "c1", // given, though -nats makes no use of it
		"WSGATE_UNKNOWN":                     "ignored",
	}
	o := defaultOptions()
	if _, err := parseArgs(&o, []string{"-read-limit", "2000", "-compression=false"}, envOf(env)); err != nil {
		t.Fatal(err)
	}
	want := defaultOptions()
	want.addr = "127.0.0.1:9999"
	want.logLevel = slog.LevelDebug
	want.logFormat = "json"
	want.shutdownTimeout = 30 * time.Second
	want.maxHTTPConns, want.maxHTTPConnsPerIP = 100, 10
	want.http.readHeader, want.http.idle = time.Second, 2*time.Second
	want.cluster = clusterOptions{natsURLs: []string{"nats://a:4222", "nats://b:4222"}, node: "n1", replicas: 3, name: "c1"}
	want.hub.PresenceTTL = 2 * time.Second
	want.ws = wsgate.Config{
		ReadLimit:           2000,
		SendQueueMessages:   7,
		SendQueueBytes:      4096,
		SlowConsumer:        wsgate.PolicyDropOldest,
		PingInterval:        -time.Second,
		PongTimeout:         3 * time.Second,
		WriteTimeout:        4 * time.Second,
		HandshakeTimeout:    time.Second,
		CloseTimeout:        2 * time.Second,
		MessageTimeout:      -time.Second,
		ParkAfter:           -time.Second,
		MaxReaders:          -1,
		AllowedOrigins:      []string{"example.com", "https://app.example.com"},
		Subprotocols:        []string{"wsgate.v1"},
		MaxConnections:      100,
		MaxHeaderBytes:      8192,
		KeepHeaders:         []string{"Cookie", "X-User"},
		AllowedHosts:        []string{"example.com", "*.example.com"},
		TrustedProxies:      []string{"10.0.0.0/8"},
		MaxConnectionsPerIP: 5,
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("flags > env > defaults broken:\n got %+v\nwant %+v", o, want)
	}
}

// TestEveryConfigFieldHasAFlag keeps the binary complete when wsgate.Config grows: each field but
// Logger (set by -log-level and -log-format) and Admit (the gateway's) needs a flag named after
// it, documented in -h.
func TestEveryConfigFieldHasAFlag(t *testing.T) {
	o := defaultOptions()
	fs := newFlagSet(&o)
	word := regexp.MustCompile(`[A-Z]+[a-z0-9]*`) // an initialism is one word: PerIP is per-ip
	typ := reflect.TypeFor[wsgate.Config]()
	for i := range typ.NumField() {
		field := typ.Field(i).Name
		if field == "Logger" || field == "Admit" || !typ.Field(i).IsExported() {
			continue
		}
		name := strings.ToLower(strings.Join(word.FindAllString(field, -1), "-"))
		if fs.Lookup(name) == nil {
			t.Errorf("wsgate.Config.%s has no flag -%s", field, name)
		}
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"serve", "-h"}} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, noEnv, &stdout, &stderr); err != nil {
			t.Fatalf("run(%q) = %v, want nil (exit 0)", args, err)
		}
		help := stdout.String()
		for _, name := range []string{"addr", "read-limit", "send-queue-messages", "send-queue-bytes", "slow-consumer",
			"ping-interval", "pong-timeout", "write-timeout", "handshake-timeout", "close-timeout", "message-timeout", "park-after", "max-readers", "allowed-origins",
			"subprotocols", "compression", "max-connections", "log-level", "log-format", "shutdown-timeout",
			"history-size", "history-ttl", "max-subscriptions", "max-data-size", "ping-push-interval", "tls-cert", "tls-key",
			"max-header-bytes", "keep-headers", "allowed-hosts", "trusted-proxies", "max-connections-per-ip",
			"max-handshake-rate", "max-http-connections", "max-http-connections-per-ip", "http-read-header-timeout", "http-idle-timeout",
			"history-max-channels", "history-max-bytes", "request-rate", "nats", "cluster-listen", "cluster-peers", "cluster-name",
			"data-dir", "nats-listen", "node", "replicas", "presence-ttl", "request-burst", "config",
			"demo", "jwt-hmac-secret-file", "jwt-public-key-files", "jwt-jwks-url", "jwt-audience", "jwt-issuer",
			"auth-cookie", "auth-query", "auth-anonymous", "connect-url", "events-url", "max-connections-per-user",
			"handshakes-per-second", "api-listen", "api-path", "api-key-file",
			"otel-endpoint", "otel-sample-ratio", "otel-channel-names"} {
			if !strings.Contains(help, "\n  -"+name+" ") && !strings.Contains(help, "\n  -"+name+"\n") {
				t.Errorf("run(%q): usage does not document -%s", args, name)
			}
			if !strings.Contains(help, envName(name)+"\n") {
				t.Errorf("run(%q): usage does not give %s for -%s", args, envName(name), name)
			}
		}
		for _, want := range []string{"Usage: wsgate [serve] [flags]", "(default 65536)", "(default 25s)", "(default close)", `(default :8080)`, "(default wsgate)", "(default 5s)"} {
			if !strings.Contains(help, want) {
				t.Errorf("run(%q): usage lacks %q", args, want)
			}
		}
		if stderr.Len() > 0 {
			t.Errorf("run(%q) wrote to stderr: %q", args, &stderr)
		}
	}
	o := defaultOptions()
	var all []string
	newFlagSet(&o).VisitAll(func(f *flag.Flag) { all = append(all, f.Name) })
	if len(all) != 73 {
		t.Errorf("flags %v: the help check above lists 73; update it", all)
	}
}

func TestEchoFitsBoundary(t *testing.T) {
	if err := checkEchoFits(&wsgate.Config{ReadLimit: 1000, SendQueueBytes: 1005}); err != nil {
		t.Errorf("a reply of exactly -send-queue-bytes refused: %v", err)
	}
	if err := checkEchoFits(&wsgate.Config{}); err != nil {
		t.Errorf("wsgate defaults refused: %v", err)
	}
	if err := checkEchoFits(&wsgate.Config{ReadLimit: 1001, SendQueueBytes: 1005}); err == nil {
		t.Error("a reply one byte over -send-queue-bytes accepted")
	}
}

func TestPublicationsFitBoundary(t *testing.T) {
	if err := checkPublicationsFit(&wsgate.Config{}, hub.DefaultMaxDataSize); err != nil {
		t.Errorf("the defaults refused: %v", err)
	}
	if err := checkPublicationsFit(&wsgate.Config{SendQueueBytes: 1000 + pushOverhead}, 1000); err != nil {
		t.Errorf("a push of exactly -send-queue-bytes refused: %v", err)
	}
	if err := checkPublicationsFit(&wsgate.Config{SendQueueBytes: 1000 + pushOverhead}, 1001); err == nil {
		t.Error("a push one byte over -send-queue-bytes accepted")
	}
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "-send-queue-bytes", "70000", "-read-limit", "1000", "-max-data-size", "69900"}, noEnv, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-max-data-size") {
		t.Fatalf("serve with publications larger than the queue: %v", err)
	}
}
