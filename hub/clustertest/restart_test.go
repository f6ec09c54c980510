package clustertest_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
)

// TestWholeNATSClusterRestarts: every server of the NATS cluster stops, then starts again on
// its store, under three nodes whose clients publish throughout (retrying 201s). Once the
// replicated stream has a leader again, publishing resumes in the same epoch, and every
// subscriber, on every node, gets every acknowledged publication once, in order.
func TestWholeNATSClusterRestarts(t *testing.T) {
	ns, nodes := startClusterNodes(t, 3, hub.Options{})
	subs, feeds := subscribeEach(t, nodes, "again")
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
	checkEveryFeed(t, subs, feeds, led)
	if n := led.count(); n != 3*perNode {
		t.Fatalf("%d publications acknowledged, want %d", n, 3*perNode)
	}
}
