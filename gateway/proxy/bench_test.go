package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway/proxy"
)

// BenchmarkConnect is the cost of a proxied connect: one POST to a backend on loopback (an
// httptest server answering a fixed identity), the answer read and checked, over kept-alive
// connections. Sequential: one connect at a time (its latency); Parallel: GOMAXPROCS×4 at once
// (the node's throughput). The backend shares the machine, so connects/s is a floor for a
// backend elsewhere that answers as fast.
//
//	go test -run '^$' -bench BenchmarkConnect -benchtime 2s ./gateway/proxy/
func BenchmarkConnect(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"result":{"user":"alice","info":{"name":"Alice"},"expires_in":3600,"channels":["#alice","news"]}}`)
	}))
	defer backend.Close()
	p, err := proxy.New(proxy.Config{Connect: proxy.Endpoint{URL: backend.URL}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.CloseIdleConnections()
	req := proxy.ConnectRequest{Client: client(""), Token: token}
	connect := func(b *testing.B) {
		if id, err := p.Connect(context.Background(), req); err != nil || id.User != "alice" {
			b.Fatal(id, err)
		}
	}
	b.Run("Sequential", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			connect(b)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "connects/s")
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				connect(b)
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "connects/s")
	})
}
