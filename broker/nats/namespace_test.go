package nats

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/broker"
)

// TestNamespaceStreamConfig: the one stream takes the largest count and the longest age of all,
// a duplicate window within that age, and message TTLs and roll-ups; a channel without history
// keeps its last message alone, for its offsets.
func TestNamespaceStreamConfig(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	n := started(t, s, Options{HistorySize: 10, HistoryTTL: time.Minute, DedupWindow: time.Hour, Namespaces: []broker.Namespace{
		{Prefix: "big:", HistorySize: 50, HistoryTTL: 30 * time.Second},
		{Prefix: "long:", HistorySize: 3, HistoryTTL: 2 * time.Hour},
		{Prefix: "none:"},
	}}, nil)
	cfg := streamConfig(t, n)
	if cfg.MaxMsgsPerSubject != 50 || cfg.MaxAge != 2*time.Hour || cfg.Duplicates != time.Hour || !cfg.AllowMsgTTL || !cfg.AllowRollup {
		t.Fatalf("stream config: per subject %d, age %v, duplicates %v, TTL %v, rollup %v", cfg.MaxMsgsPerSubject, cfg.MaxAge, cfg.Duplicates, cfg.AllowMsgTTL, cfg.AllowRollup)
	}
	if got := n.limitsOf("big:a").ttlHdr; len(got) != 1 || got[0] != "30" {
		t.Fatalf("big:'s TTL header %v", got)
	}
	if got := n.limitsOf("long:a").ttlHdr; got != nil {
		t.Fatalf("long: has the stream's age, and no TTL header: %v", got)
	}
	if got := n.limitsOf("other").ttlHdr; len(got) != 1 || got[0] != "60" {
		t.Fatalf("the default's TTL header %v", got)
	}
	var top broker.Position
	for range 4 {
		var err error
		if top, err = n.Publish(ctx, "none:a", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	first, ok, err := n.next(ctx, n.in+"none:a", 0)
	if err != nil || !ok || first.pos != top {
		t.Fatalf("none:a's first message kept: %+v %v %v, want its top %+v alone", first.pos, ok, err, top)
	}
}

func streamConfig(t *testing.T, n *Broker) jetstream.StreamConfig {
	t.Helper()
	js, err := jetstream.New(n.nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), n.opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config
}

// TestNamespaceChangeOnRestart: a node restarted with other bounds for a namespace updates the
// stream; the channel keeps its epoch and offsets, and its history follows the new bounds.
func TestNamespaceChangeOnRestart(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	ns := func(size int) Options {
		return Options{HistorySize: 10, Namespaces: []broker.Namespace{{Prefix: "chat:", HistorySize: size}}}
	}
	a := started(t, s, ns(20), nil)
	var top broker.Position
	for range 15 {
		var err error
		if top, err = a.Publish(ctx, "chat:a", []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b := started(t, s, ns(4), nil)
	if got := streamConfig(t, b).MaxMsgsPerSubject; got != 10 {
		t.Fatalf("per-subject bound after the change: %d, want 10", got)
	}
	r, err := b.History(ctx, "chat:a", nil, 100)
	if err != nil || len(r.Publications) != 4 || r.Position != top || r.Publications[0].Offset != 12 {
		t.Fatalf("history with the new bound: %+v %v", r, err)
	}
	if p, err := b.Publish(ctx, "chat:a", []byte("1")); err != nil || p.Epoch != top.Epoch || p.Offset != 16 {
		t.Fatalf("publication after the change: %+v %v (before %+v)", p, err, top)
	}
}

// TestStartRefusesAgesNATSCannotCarry: an age shorter than the longest travels as a message TTL,
// which counts whole seconds.
func TestStartRefusesAgesNATSCannotCarry(t *testing.T) {
	s := runServer(t, "", 0)
	for _, o := range []Options{
		{Namespaces: []broker.Namespace{{Prefix: "a:", HistorySize: 1, HistoryTTL: 1500 * time.Millisecond}}},
		{HistoryTTL: 500 * time.Millisecond, Namespaces: []broker.Namespace{{Prefix: "a:", HistorySize: 1, HistoryTTL: time.Minute}}},
	} {
		n := newBroker(t, s, o)
		err := n.Start(context.Background(), func(broker.Publication) {})
		if err == nil || !strings.Contains(err.Error(), "whole seconds") {
			t.Errorf("%+v: Start: %v", o.Namespaces, err)
		}
	}
}

// TestNoHistoryNamespaceCatchUp: in a namespace that keeps no history a node still delivers what
// it missed in transit as far as the stream holds it (the channel's last publication): a lost
// last publication arrives within the check, and a lost one before it is a jump in offsets.
func TestNoHistoryNamespaceCatchUp(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	col := newCollector()
	const interval = 300 * time.Millisecond
	o := Options{CheckInterval: interval, Namespaces: []broker.Namespace{{Prefix: "none:"}}}
	a := newBroker(t, s, o)
	a.lose = func(p broker.Publication) bool {
		return p.Channel == "none:last" && p.Offset == 3 || p.Channel == "none:mid" && p.Offset == 2
	}
	if err := a.Start(ctx, col.deliver); err != nil {
		t.Fatal(err)
	}
	other := started(t, s, o, nil)
	for _, ch := range []string{"none:last", "none:mid"} {
		if err := a.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := other.Publish(ctx, ch, []byte("1")); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventuallyWithin(t, 2*interval+checkGrace+time.Second, "the lost last publication", func() bool {
		return len(col.get("none:last")) == 3
	})
	checkSequence(t, "none:last", col.get("none:last"), 3)
	got := col.wait(t, "none:mid", 2)
	if len(got) != 2 || got[0].Offset != 1 || got[1].Offset != 3 {
		t.Fatalf("none:mid: %+v, want 1 then 3 (2 is gone)", got)
	}
}
