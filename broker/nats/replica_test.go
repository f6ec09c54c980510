package nats

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/broker"
)

// replicated starts a 3-server cluster and an R3 stream on it, and returns the servers other
// than the stream's leader (where a direct get is answered by a replica that may lag) and the
// leader's.
func replicated(t testing.TB) (followers []*server.Server, leader *server.Server) {
	t.Helper()
	servers := runCluster(t)
	ctx := context.Background()
	first := newBroker(t, servers[0], Options{Replicas: 3})
	eventuallyWithin(t, 30*time.Second, "the stream", func() bool { return first.Start(ctx, nil) == nil })
	js, err := jetstream.New(first.nc)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	eventuallyWithin(t, 30*time.Second, "the stream's leader", func() bool {
		st, err := js.Stream(ctx, DefaultStream)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		name = info.Cluster.Leader
		return name != "" && len(info.Cluster.Replicas) == 2
	})
	for _, s := range servers {
		if s.Name() == name {
			leader = s
		} else {
			followers = append(followers, s)
		}
	}
	if leader == nil || len(followers) != 2 {
		t.Fatalf("leader %q not among the servers", name)
	}
	return followers, leader
}

// warm starts b and waits until it can publish: the cluster may still spread the stream's
// interest.
func warm(t testing.TB, b *Broker, deliver broker.DeliverFunc) {
	t.Helper()
	ctx := context.Background()
	if deliver == nil {
		deliver = func(broker.Publication) {}
	}
	eventuallyWithin(t, 30*time.Second, "the node's start", func() bool { return b.Start(ctx, deliver) == nil })
	eventuallyWithin(t, 30*time.Second, "the node's first publication", func() bool {
		_, err := b.Publish(ctx, "warm-up", []byte("1"))
		return err == nil
	})
}

// TestHistoryReadsAcknowledged: in an R3 stream, a node on one follower publishes and a node on
// the other reads History at once after each acknowledgement: every acknowledged publication
// is there, and the reply's top is at least it, although the reader's server is a replica that
// may lag the leader.
func TestHistoryReadsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("three servers")
	}
	followers, _ := replicated(t)
	ctx := context.Background()
	opts := Options{Replicas: 3, HistorySize: 1000}
	pub, rd := newBroker(t, followers[0], opts), newBroker(t, followers[1], opts)
	warm(t, pub, nil)
	warm(t, rd, nil)
	var since *broker.Position
	for i := range 500 {
		pos, err := pub.Publish(ctx, "c", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		r, err := rd.History(ctx, "c", since, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Position != pos || !r.Complete {
			t.Fatalf("publication %d: history's top %v (complete %v) after %v was acknowledged", i, r.Position, r.Complete, pos)
		}
		if n := len(r.Publications); n != 1 || r.Publications[0].Offset != pos.Offset {
			t.Fatalf("publication %d: history after %v holds %d publications, want %v", i, since, n, pos)
		}
		since = &pos
	}
}

// TestSubscribeThenPublishElsewhere: a node subscribes on one server, and a node on another
// publishes at once after Subscribe returned: the publication is delivered, every time,
// although the subscription's interest has to cross the cluster's routes to reach the leader
// that republishes.
func TestSubscribeThenPublishElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("three servers")
	}
	followers, leader := replicated(t)
	ctx := context.Background()
	opts := Options{Replicas: 3}
	col := newCollector()
	sub := newBroker(t, followers[0], opts)
	warm(t, sub, col.deliver)
	pubs := []*Broker{newBroker(t, followers[1], opts), newBroker(t, leader, opts)}
	for _, p := range pubs {
		warm(t, p, nil)
	}
	const n = 300
	for i := range n {
		ch := fmt.Sprintf("s%d", i)
		if err := sub.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
		if _, err := pubs[i%2].Publish(ctx, ch, []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := range n {
		ch := fmt.Sprintf("s%d", i)
		for len(col.get(ch)) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := col.get(ch); len(got) != 1 {
			t.Errorf("channel %s: %d deliveries of the publication acknowledged after Subscribe, want 1", ch, len(got))
		}
	}
}
