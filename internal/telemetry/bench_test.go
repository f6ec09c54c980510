package telemetry_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/internal/telemetry"
	"github.com/wsgate/wsgate/protocol"
)

// BenchmarkPublishTraced: what tracing costs a server-side publication delivered to one local
// subscriber (its reads included, the same in each): off (no Tracer), on and sampled (publish
// and deliver spans, to an exporter that drops them), on and not sampled.
func BenchmarkPublishTraced(b *testing.B) {
	for _, c := range []struct {
		name  string
		ratio float64 // 0: tracing off
	}{{"off", 0}, {"sampled", 1}, {"unsampled", 1e-300}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			ho := hub.Options{Logger: quiet, PingInterval: -1}
			if c.ratio > 0 {
				tel, err := telemetry.New(ctx, telemetry.Options{SampleRatio: c.ratio, Exporter: tracetest.NewNoopExporter()})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = tel.Shutdown(ctx) })
				ho.Tracer = tel
			}
			h, err := hub.New(ctx, memory.New(nil), &ho)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = h.Close(ctx) })
			sub := subscriber(b, h, "bench")
			data := []byte(`{"text":"hello"}`)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Publish(ctx, "bench", data); err != nil {
					b.Fatal(err)
				}
				<-sub
			}
		})
	}
}

// subscriber serves h on loopback and subscribes a gorilla/websocket client to channel; the
// returned channel ticks at every publication it reads.
func subscriber(b *testing.B, h *hub.Hub, channel string) <-chan struct{} {
	b.Helper()
	srv, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"subscribe","channel":"`+channel+`"}`))
	if _, _, err := ws.ReadMessage(); err != nil {
		b.Fatal(err)
	}
	tick := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { // owner: the benchmark; ends when its cleanup closes the socket
		defer close(done)
		for {
			_, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if bytes.Contains(p, []byte(`"push":"pub"`)) {
				tick <- struct{}{}
			}
		}
	}()
	b.Cleanup(func() {
		ws.Close()
		<-done
		_ = srv.Shutdown(context.Background())
		hs.Close()
	})
	return tick
}
