package nats

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkPublishNamespaced is BenchmarkPublishNoSubscribers to a channel of a namespace
// whose age is shorter than the longest: each publication carries a message TTL.
func BenchmarkPublishNamespaced(b *testing.B) {
	benchmarkPublishOpts(b, false, Options{Namespaces: benchNamespaces}, nil)
}

// BenchmarkPublishOnce is BenchmarkPublishNoSubscribers through PublishOnce, a new key each time:
// the key's hash and the Nats-Msg-Id header, and the stream's duplicate check.
func BenchmarkPublishOnce(b *testing.B) {
	i := 0
	benchmarkPublishOpts(b, false, Options{}, func(ctx context.Context, n *Broker, data []byte) (broker.Position, error) {
		i++
		return n.PublishOnce(ctx, "bench", data, "key-"+strconv.Itoa(i))
	})
}

// benchNamespaces are a gateway's few namespaces; "bench" is in the last.
var benchNamespaces = []broker.Namespace{
	{Prefix: "news:", HistorySize: 10, HistoryTTL: time.Hour},
	{Prefix: "chat:", HistorySize: 100},
	{Prefix: "cursor:", HistorySize: 0},
	{Prefix: "be", HistorySize: 50, HistoryTTL: time.Minute},
}

func benchmarkPublish(b *testing.B, subscribed bool) {
	benchmarkPublishOpts(b, subscribed, Options{}, nil)
}

func benchmarkPublishOpts(b *testing.B, subscribed bool, o Options, publish func(context.Context, *Broker, []byte) (broker.Position, error)) {
	if publish == nil {
		publish = func(ctx context.Context, n *Broker, data []byte) (broker.Position, error) {
			return n.Publish(ctx, "bench", data)
		}
	}
	s := runServer(b, "", 0)
	ctx := context.Background()
	var delivered atomic.Int64
	pub := started(b, s, o, nil)
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
		if _, err := publish(ctx, pub, data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if subscribed {
		eventually(b, "every publication delivered", func() bool { return delivered.Load() >= int64(b.N) })
	}
}

// BenchmarkHistory is a recovering client's read: the last 10 publications of a channel of
// 100, after a position. On three servers the reader's and the publisher's servers are replicas
// other than the stream's leader.
func BenchmarkHistory(b *testing.B) {
	b.Run("servers=1", func(b *testing.B) {
		s := runServer(b, "", 0)
		benchmarkHistory(b, started(b, s, Options{}, nil), started(b, s, Options{}, nil))
	})
	b.Run("servers=3", func(b *testing.B) {
		followers, _ := replicated(b)
		opts := Options{Replicas: 3}
		pub, rd := newBroker(b, followers[0], opts), newBroker(b, followers[1], opts)
		warm(b, pub, nil)
		warm(b, rd, nil)
		benchmarkHistory(b, pub, rd)
	})
}

func benchmarkHistory(b *testing.B, pub, rd *Broker) {
	ctx := context.Background()
	var since broker.Position
	for i := range 100 {
		pos, err := pub.Publish(ctx, "bench", []byte(`{"text":"a publication of about sixty-four bytes, JSON"}`))
		if err != nil {
			b.Fatal(err)
		}
		if i == 89 {
			since = pos
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, err := rd.History(ctx, "bench", &since, 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Publications) != 10 {
			b.Fatalf("%d publications, want 10", len(r.Publications))
		}
	}
}

// BenchmarkSubscribe is a node's first subscriber to a channel, then its last leaving: on three
// servers, from a follower, Subscribe waits for its interest at the stream leader's server.
func BenchmarkSubscribe(b *testing.B) {
	b.Run("servers=1", func(b *testing.B) {
		benchmarkSubscribe(b, started(b, runServer(b, "", 0), Options{}, nil))
	})
	b.Run("servers=3", func(b *testing.B) {
		followers, _ := replicated(b)
		n := newBroker(b, followers[0], Options{Replicas: 3})
		warm(b, n, nil)
		benchmarkSubscribe(b, n)
	})
}

func benchmarkSubscribe(b *testing.B, n *Broker) {
	ctx := context.Background()
	if _, err := n.Publish(ctx, "bench", []byte("1")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := n.Subscribe(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
		if err := n.Unsubscribe(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishReplicated is one channel's publication rate from one node on a three-server
// cluster with three replicas, the publisher on a follower's server: every publication waits for
// the leader to store it on a quorum.
func BenchmarkPublishReplicated(b *testing.B) {
	servers := runCluster(b)
	ctx := context.Background()
	var pub *Broker
	for _, s := range servers {
		if !s.JetStreamIsLeader() {
			pub = newBroker(b, s, Options{Replicas: 3})
			break
		}
	}
	eventuallyWithin(b, 30*time.Second, "the node's start", func() bool { return pub.Start(ctx, func(broker.Publication) {}) == nil })
	data := []byte(`{"text":"a publication of about sixty-four bytes, JSON"}`)
	eventuallyWithin(b, 30*time.Second, "the first publication", func() bool {
		_, err := pub.Publish(ctx, "bench", data)
		return err == nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := pub.Publish(ctx, "bench", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck is one periodic check of a node's subscribed channels' tops, none behind:
// 1,000 channels with a 64-byte publication each, read in batches of checkBatch.
func BenchmarkCheck(b *testing.B) {
	const channels = 1000
	s := runServer(b, "", 0)
	ctx := context.Background()
	n := started(b, s, Options{CheckInterval: -1}, nil)
	data := []byte(`{"text":"a publication of about sixty-four bytes, JSON"}`)
	for i := range channels {
		ch := "check-" + strconv.Itoa(i)
		if err := n.Subscribe(ctx, ch); err != nil {
			b.Fatal(err)
		}
		if _, err := n.Publish(ctx, ch, data); err != nil {
			b.Fatal(err)
		}
	}
	eventually(b, "every publication delivered", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, s := range n.subs {
			s.mu.Lock()
			off := s.pos.Offset
			s.mu.Unlock()
			if off != 1 {
				return false
			}
		}
		return true
	})
	in := n.nc.Stats().InBytes
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		n.checkTops()
	}
	b.StopTimer()
	b.ReportMetric(float64(n.nc.Stats().InBytes-in)/float64(b.N*channels), "B-in/channel")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*channels), "ns/channel")
}
