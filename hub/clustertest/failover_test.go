package clustertest_test

import (
	"sync/atomic"
	"testing"
	"time"

	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
)

// TestStreamLeaderServerDown: three nodes on a 3-server NATS cluster; the server that leads the
// stream, and that one node is connected to, stops while clients of every node publish. The
// node moves to another server, the stream elects another leader (two of three remain), and
// every subscriber on every node, the moved node's included, gets every acknowledged
// publication once, in order.
func TestStreamLeaderServerDown(t *testing.T) {
	ns := runNATSCluster(t)
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = startNode(t, clusterURL(ns, i), natsbroker.Options{Replicas: 3}, hub.Options{})
	}
	leader := -1
	waitUntil(t, "a leader of the stream", 10*time.Second, func() bool {
		for i, n := range ns {
			if n.s.JetStreamIsStreamLeader("$G", natsbroker.DefaultStream) {
				leader = i
				return true
			}
		}
		return false
	})
	var subs []*wsClient
	var feeds []*feed
	for _, n := range nodes {
		c := dialWS(t, n.url)
		subs, feeds = append(subs, c), append(feeds, newFeed("carry", c.subscribe("carry", nil, false)))
	}
	const perNode = 150
	led := newLedger()
	var refused atomic.Int64
	wait := publishFrom(t, nodes, "carry", perNode, led, &refused)
	defer wait()
	waitUntil(t, "publications before the stop", 10*time.Second, func() bool { return led.highest() >= 100 || t.Failed() })
	stopped := time.Now()
	ns[leader].stop()
	wait()
	t.Logf("server s%d, the stream's leader, stopped; %d publications refused with 201 and retried; all acknowledged %v after the stop",
		leader+1, refused.Load(), time.Since(stopped).Round(time.Millisecond))
	const total = 3 * perNode
	if top := led.highest(); top != total {
		t.Fatalf("the last offset acknowledged is %d, want %d", top, total)
	}
	for i, fd := range feeds {
		if err := fd.readUntil(subs[i], total); err != nil {
			t.Fatalf("subscriber on node %d (node %d moved): %v", i, leader, err)
		}
		if miss := led.missing(fd.data, 0, total); len(miss) > 0 {
			t.Fatalf("subscriber on node %d missed what was acknowledged: %v", i, miss)
		}
	}
}
