package clustertest_test

import (
	"sync/atomic"
	"testing"
	"time"

	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
)

// TestWholeNATSClusterRestarts: every server of the NATS cluster stops, then starts again on
// its store, under three nodes whose clients publish throughout (retrying 201s). Once the
// replicated stream has a leader again, publishing resumes in the same epoch, and every
// subscriber, on every node, gets every acknowledged publication once, in order.
func TestWholeNATSClusterRestarts(t *testing.T) {
	ns := runNATSCluster(t)
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = startNode(t, clusterURL(ns, i), natsbroker.Options{Replicas: 3}, hub.Options{})
	}
	var subs []*wsClient
	var feeds []*feed
	for _, n := range nodes {
		c := dialWS(t, n.url)
		subs, feeds = append(subs, c), append(feeds, newFeed("again", c.subscribe("again", nil, false)))
	}
	const perNode = 100
	led := newLedger()
	var refused atomic.Int64
	wait := publishFrom(t, nodes, "again", perNode, led, &refused)
	defer wait()
	waitUntil(t, "publications before the stop", 10*time.Second, func() bool { return led.highest() >= 50 || t.Failed() })
	for _, n := range ns {
		n.stop()
	}
	stopped := time.Now()
	for _, n := range ns {
		n.start()
	}
	wait()
	t.Logf("%d publications refused with 201 and retried; all acknowledged %v after the stop",
		refused.Load(), time.Since(stopped).Round(time.Millisecond))
	top := led.highest()
	for i, fd := range feeds {
		if err := fd.readUntil(subs[i], top); err != nil {
			t.Fatalf("subscriber on node %d: %v", i, err)
		}
		if miss := led.missing(fd.data, 0, top); len(miss) > 0 {
			t.Fatalf("subscriber on node %d missed what was acknowledged: %v", i, miss)
		}
	}
	// Offsets beyond the acknowledged ones are publications refused and stored all the same
	// (TestRefusedPublicationIsNotStored); they reach every subscriber too.
	if n := led.count(); n != 3*perNode {
		t.Fatalf("%d publications acknowledged, want %d", n, 3*perNode)
	}
}
