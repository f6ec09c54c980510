package nats

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/wsgate/wsgate/broker"
)

// TestHistoryAmongOtherChannels: the seek finds any offset of a channel whose messages are
// spread unevenly among other channels' in the stream, and pages read it all in order.
func TestHistoryAmongOtherChannels(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	a := started(t, s, Options{HistorySize: 1000}, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 300
	var top broker.Position
	for i := 1; i <= n; i++ {
		others := rng.IntN(4)
		if i > 100 && i < 150 {
			others = 30 // a dense patch of others
		}
		for range others {
			if _, err := a.Publish(ctx, fmt.Sprintf("o%d", rng.IntN(5)), []byte("0")); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if top, err = a.Publish(ctx, "h", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []uint64{0, 1, 2, 33, 99, 100, 101, 120, 149, 150, 200, 267, 290, 299} {
		r, err := a.History(ctx, "h", &broker.Position{Epoch: top.Epoch, Offset: k}, 7)
		if err != nil || !r.Complete || r.Position != top {
			t.Fatalf("since %d: %+v %v", k, r, err)
		}
		want := min(7, n-int(k))
		if len(r.Publications) != want || r.More != (n-int(k) > 7) {
			t.Fatalf("since %d: %d publications, more %v", k, len(r.Publications), r.More)
		}
		for i, p := range r.Publications {
			if p.Offset != k+uint64(i)+1 || string(p.Data) != fmt.Sprint(p.Offset) || p.Channel != "h" {
				t.Fatalf("since %d: publication %d is %+v", k, i, p)
			}
		}
	}
	var got []broker.Publication
	since := broker.Position{Epoch: top.Epoch}
	for {
		r, err := a.History(ctx, "h", &since, 64)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Publications...)
		if !r.More {
			break
		}
		since = broker.Position{Epoch: r.Epoch, Offset: r.Publications[len(r.Publications)-1].Offset}
	}
	checkSequence(t, "pages", got, n)
	r, _ := a.History(ctx, "h", nil, 5)
	if len(r.Publications) != 5 || r.Publications[0].Offset != n-4 || r.More || !r.Complete {
		t.Fatalf("latest 5: %+v", r)
	}
}

// TestHistoryReachesTheTop: what a replica's batch lacks up to the top, as a lagging one would,
// is read from the stream's leader, data and all, among other channels' messages.
func TestHistoryReachesTheTop(t *testing.T) {
	s := runServer(t, "", 0)
	ctx := context.Background()
	a := started(t, s, Options{}, nil)
	for i := range 6 {
		if _, err := a.Publish(ctx, "r", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Publish(ctx, "other", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	subj := a.in + subjectToken("r")
	top, ok, err := a.lastFromLeader(ctx, subj)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	all, err := a.batch(ctx, subj, 1, 6)
	if err != nil || len(all) != 6 {
		t.Fatal(len(all), err)
	}
	for _, lag := range []int{0, 1, 2, 6} {
		got, err := a.reach(ctx, subj, append([]stored(nil), all[:6-lag]...), 1, top, top.pos.Offset)
		if err != nil || len(got) != 6 {
			t.Fatalf("lag %d: %d messages, %v", lag, len(got), err)
		}
		for i, s := range got {
			if s.seq != all[i].seq || s.pos != all[i].pos || string(s.data) != fmt.Sprint(i) {
				t.Fatalf("lag %d: message %d is %+v, want %+v", lag, i, s, all[i])
			}
		}
	}
}
