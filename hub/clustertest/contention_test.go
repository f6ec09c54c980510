package clustertest_test

import (
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/hub"
)

// TestConcurrentPublishersAreNotRefused: three nodes on a healthy NATS cluster publish to one
// channel at once; none is refused. The broker's doc promises that a node that finds the
// channel's top moved reads it again and retries; an error 201 here tells a client that the
// broker is unavailable when it is not.
func TestConcurrentPublishersAreNotRefused(t *testing.T) {
	nodes := startClusterNodes(t, 3, hub.Options{})
	led := newLedger()
	var refused atomic.Int64
	publishFrom(t, nodes, "contended", 100, led, &refused)()
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d of 300 publications refused with 201 on a healthy cluster", n)
	}
}
