package clustertest_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/hub"
)

// TestConcurrentPublishersAreNotRefused: three nodes on a healthy NATS cluster publish to one
// channel at once; none is refused. The broker's doc promises that a node that finds the
// channel's top moved reads it again and retries; an error 201 here tells a client that the
// broker is unavailable when it is not.
func TestConcurrentPublishersAreNotRefused(t *testing.T) {
	_, nodes := startClusterNodes(t, 3, hub.Options{})
	led := newLedger()
	var refused atomic.Int64
	publishFrom(t, nodes, "contended", 100, led, &refused)()
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d of 300 publications refused with 201 on a healthy cluster", n)
	}
}

// TestSequentialPublishersAreNotRefused: one node publishes to eight channels, on each one
// publication after the other, on a stream replicated three times: nobody contends for a
// channel's top, and none may be refused. (JetStream answers 10164 when the previous
// publication of the subject, acknowledged already, is still being applied: rarely, so the
// test publishes for a while, and stops at the first refusal.)
func TestSequentialPublishersAreNotRefused(t *testing.T) {
	_, nodes := startClusterNodes(t, 1, hub.Options{})
	const channels = 8
	deadline := time.Now().Add(8 * time.Second)
	var (
		wg                 sync.WaitGroup
		published, refused atomic.Int64
		first              atomic.Value
	)
	for c := range channels {
		wg.Add(1)
		go func() { // owner: the test; waited for below
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && refused.Load() == 0; i++ {
				_, err := nodes[0].hub.Publish(context.Background(), fmt.Sprint("alone-", c), fmt.Appendf(nil, "%d", i))
				if err != nil {
					refused.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("channel %d #%d: %v", c, i, err))
				}
				published.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d of %d publications refused, none contending for a channel; first %s", n, published.Load(), first.Load())
	}
	t.Logf("%d publications, none refused", published.Load())
}
