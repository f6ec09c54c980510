package events

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	natsbroker "github.com/wsgate/wsgate/broker/nats"
)

// benchDelivery measures events from Connected to the backend's 2xx, one connection's connect
// per iteration: the rate of one event in flight.
func benchDelivery(b *testing.B, outbox func(b *testing.B) Options) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	o := outbox(b)
	o.URL, o.Logger, o.QueueLen = srv.URL, slog.New(slog.DiscardHandler), b.N+1
	s, err := New(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		s.Connected(ConnectInfo{Client: fmt.Sprint(i)})
	}
	for s.Stats().Delivered < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Close(ctx)
}

func BenchmarkDeliveryMemory(b *testing.B) {
	benchDelivery(b, func(*testing.B) Options { return Options{} })
}

func BenchmarkDeliveryNATS(b *testing.B) {
	benchDelivery(b, func(b *testing.B) Options {
		ns := runNATS(b, b.TempDir(), 0)
		nb, err := natsbroker.New(&natsbroker.Options{URL: ns.ClientURL(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = nb.Close(context.Background()) })
		return Options{Outbox: nb}
	})
}
