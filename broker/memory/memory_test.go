package memory

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/hub/brokertest"
	"github.com/wsgate/wsgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) hub.Broker { return New(&Options{HistorySize: 10}) })
}

func TestHistoryBoundedByCountAndAge(t *testing.T) {
	now := time.Unix(1000, 0)
	b := New(&Options{HistorySize: 3, HistoryTTL: time.Minute, now: func() time.Time { return now }})
	ctx := context.Background()
	if err := b.Start(ctx, func(hub.Publication) {}); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	var pos protocol.Position
	for range 5 {
		pos, _ = b.Publish(ctx, "c", []byte("1"))
	}
	r, _ := b.History(ctx, "c", &protocol.Position{Epoch: pos.Epoch, Offset: 2}, 100)
	if len(r.Publications) != 3 || r.Publications[0].Offset != 3 || !r.Complete {
		t.Fatalf("count bound: %+v", r)
	}
	r, _ = b.History(ctx, "c", &protocol.Position{Epoch: pos.Epoch, Offset: 1}, 100)
	if r.Complete {
		t.Fatalf("offset 2 was evicted; recovery from 1 must be incomplete: %+v", r)
	}
	now = now.Add(2 * time.Minute)
	r, _ = b.History(ctx, "c", &protocol.Position{Epoch: pos.Epoch, Offset: 4}, 100)
	if r.Complete || len(r.Publications) != 0 {
		t.Fatalf("age bound: %+v", r)
	}
	now = now.Add(2 * time.Minute)
	b.sweep() // expired and idle: the stream is forgotten, a new epoch begins
	r, _ = b.History(ctx, "c", nil, 10)
	if r.Top.Epoch == pos.Epoch || r.Top.Offset != 0 {
		t.Fatalf("after losing history the epoch must change: %+v (old %s)", r.Top, pos.Epoch)
	}
}
