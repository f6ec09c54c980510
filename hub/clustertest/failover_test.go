package clustertest_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
)

// TestStreamLeaderServerDown: three nodes on a 3-server NATS cluster; the server that leads the
// stream, and that one node is connected to, stops while clients of every node publish. The
// node moves to another server, the stream elects another leader (two of three remain), and
// every subscriber on every node, the moved node's included, gets every acknowledged
// publication once, in order.
func TestStreamLeaderServerDown(t *testing.T) {
	ns, nodes := startClusterNodes(t, 3, hub.Options{})
	leader := streamLeader(t, ns)
	subs, feeds := subscribeEach(t, nodes, "carry")
	const perNode = 150
	led := newLedger()
	var refused atomic.Int64
	wait := publishFrom(t, nodes, "carry", perNode, led, &refused)
	defer wait()
	waitUntil(t, "publications before the stop", 10*time.Second, func() bool { return led.highest() >= 100 || t.Failed() })
	stopped := time.Now()
	ns[leader].stop()
	wait()
	t.Logf("server s%d, the stream's leader, stopped: node %d moved; %d publications refused with 201 and retried; all acknowledged %v after the stop",
		leader+1, leader, refused.Load(), time.Since(stopped).Round(time.Millisecond))
	checkEveryFeed(t, subs, feeds, led)
	if n := led.count(); n != 3*perNode {
		t.Fatalf("%d publications acknowledged, want %d", n, 3*perNode)
	}
}
