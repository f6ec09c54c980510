package nats

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/broker"
)

// BenchmarkPublishNoSubscribers is what a publication to a channel no node subscribes to costs
// its publisher: one round trip to the stream (store, ack); the republication goes nowhere.
func BenchmarkPublishNoSubscribers(b *testing.B) {
	benchmarkPublish(b, false)
}

// BenchmarkPublishOneSubscriber adds a subscribed node on another connection, which receives
// every publication; the figure is still the publisher's round trip.
func BenchmarkPublishOneSubscriber(b *testing.B) {
	benchmarkPublish(b, true)
}

func benchmarkPublish(b *testing.B, subscribed bool) {
	s := runServer(b, "", 0)
	ctx := context.Background()
	var delivered atomic.Int64
	pub := started(b, s, Options{}, nil)
	if subscribed {
		sub := started(b, s, Options{}, func(broker.Publication) { delivered.Add(1) })
		if err := sub.Subscribe(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	data := []byte(`{"text":"a publication of about sixty-four bytes, JSON"}`)
	if _, err := pub.Publish(ctx, "bench", data); err != nil { // the channel's top is known
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := pub.Publish(ctx, "bench", data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if subscribed {
		eventually(b, "every publication delivered", func() bool { return delivered.Load() >= int64(b.N) })
	}
}
