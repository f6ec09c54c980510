package memory

import (
	"context"
	"testing"
)

// BenchmarkPublish is a publication to a channel with one subscribed node: the path every
// publication takes (expiry check, ring push, delivery).
func BenchmarkPublish(b *testing.B) {
	benchmarkPublish(b, &Options{})
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
