package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testport"
)

// collector is an OTLP/HTTP trace receiver: it keeps the bodies POSTed to /v1/traces.
type collector struct {
	mu     sync.Mutex
	bodies [][]byte
	other  []string // requests to anything else
}

func startCollector(t *testing.T) (*collector, string) {
	c := &collector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			c.other = append(c.other, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
			return
		}
		c.bodies = append(c.bodies, b)
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// all is everything the collector received, and what it did not expect.
func (c *collector) all() ([]byte, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Join(c.bodies, nil), c.other
}

// TestOtelEndpointExportsTraces: with -otel-endpoint, an API publication's spans reach the
// collector over OTLP/HTTP (at /v1/traces, added to a URL without a path) by the time the node
// has shut down; the service is named wsgate.
func TestOtelEndpointExportsTraces(t *testing.T) {
	col, url := startCollector(t)
	keyFile := writeFile(t, "keys", "api-key-0123456789abcdef\n")
	r := startRun(t, "-otel-endpoint", url, "-api-path", "/api", "-api-key-file", keyFile)
	resp, body := post(t, "http://"+r.addr+"/api/publish", `{"channel":"news","data":1}`, http.Header{"X-Api-Key": {"api-key-0123456789abcdef"}})
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	got, other := col.all()
	for _, want := range []string{"API publish", "publish", "wsgate", "service.instance.id"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("the collector did not get %q (%d bytes)", want, len(got))
		}
	}
	if bytes.Contains(got, []byte("news")) {
		t.Error("a channel name was exported without -otel-channel-names")
	}
	if len(other) > 0 {
		t.Errorf("unexpected requests: %q", other)
	}
}

// TestOtelOffByDefault: without -otel-endpoint nothing is exported, even with the standard
// OTEL_EXPORTER_OTLP_ENDPOINT set (a platform may set it for every process).
func TestOtelOffByDefault(t *testing.T) {
	col, url := startCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	keyFile := writeFile(t, "keys", "api-key-0123456789abcdef\n")
	r := startRun(t, "-api-path", "/api", "-api-key-file", keyFile)
	resp, body := post(t, "http://"+r.addr+"/api/publish", `{"channel":"news","data":1}`, http.Header{"X-Api-Key": {"api-key-0123456789abcdef"}})
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if got, other := col.all(); len(got) > 0 || len(other) > 0 {
		t.Errorf("the collector got %d bytes and %q without -otel-endpoint", len(got), other)
	}
}

// TestOtelCollectorDownDoesNotHoldShutdown: with a collector that cannot be reached, a node
// still stops promptly (the last spans get otelFlushTimeout) and says its spans were lost.
func TestOtelCollectorDownDoesNotHoldShutdown(t *testing.T) {
	keyFile := writeFile(t, "keys", "api-key-0123456789abcdef\n")
	r := startRun(t, "-otel-endpoint", "http://"+closedAddr(t), "-api-path", "/api", "-api-key-file", keyFile)
	resp, body := post(t, "http://"+r.addr+"/api/publish", `{"channel":"news","data":1}`, http.Header{"X-Api-Key": {"api-key-0123456789abcdef"}})
	if resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	start := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > otelFlushTimeout+2*time.Second {
		t.Errorf("stopping took %v with the collector down", d)
	}
	if r.logs.find("telemetry: the last spans were not exported", nil) == nil && r.logs.find("telemetry: spans not exported", nil) == nil {
		t.Errorf("no warning that spans were lost; logs:\n%s", r.logs)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	return testport.Addr(t)
}
