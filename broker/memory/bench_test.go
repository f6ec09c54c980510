package memory

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

// BenchmarkPublish is a publication to a channel with one subscribed node: the path every
// publication takes (expiry check, ring push, delivery).
func BenchmarkPublish(b *testing.B) {
	benchmarkPublish(b, &Options{})
}

// BenchmarkPublishNamespaced is BenchmarkPublish with a gateway's few namespaces, the channel in
// one of them: the longest-prefix match of each publication.
func BenchmarkPublishNamespaced(b *testing.B) {
	benchmarkPublish(b, &Options{Namespaces: []broker.Namespace{
		{Prefix: "news:", HistorySize: 10, HistoryTTL: time.Hour},
		{Prefix: "cursor:", HistorySize: 0},
		{Prefix: "chat:vip:", HistorySize: 500},
		{Prefix: "chat:", HistorySize: 100, HistoryTTL: time.Minute},
	}})
}

// BenchmarkPublishOnce is BenchmarkPublish through PublishOnce, a new key each time: the key's
// SHA-256 and its place among the keys remembered (which the default bound keeps at 100,000).
func BenchmarkPublishOnce(b *testing.B) {
	br := started(b, &Options{})
	ctx := context.Background()
	data := []byte(`{"text":"a publication of about sixty-four bytes, JSON"}`)
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := br.PublishOnce(ctx, "chat:bench", data, keys[i%len(keys)]+"-"+strconv.Itoa(i/len(keys))); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkPublish(b *testing.B, o *Options) {
	br := started(b, o)
	ctx := context.Background()
	if err := br.Subscribe(ctx, "chat:bench"); err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"text":"a publication of about sixty-four bytes, JSON"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Publish(ctx, "chat:bench", data); err != nil {
			b.Fatal(err)
		}
	}
}
