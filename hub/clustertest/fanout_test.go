package clustertest_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// startClusterNodes starts a 3-server NATS cluster and n nodes, node i connected to server i%3
// first, on a stream replicated three times.
func startClusterNodes(t *testing.T, n int, ho hub.Options) ([]*natsServer, []*node) {
	t.Helper()
	ns := runNATSCluster(t)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, clusterURL(ns, i%3), natsbroker.Options{Replicas: 3}, ho)
	}
	return ns, nodes
}

// subscribeEach subscribes a client of each node to channel.
func subscribeEach(t *testing.T, nodes []*node, channel string) ([]*wsClient, []*feed) {
	t.Helper()
	var subs []*wsClient
	var feeds []*feed
	for _, n := range nodes {
		c := dialWS(t, n.url)
		subs, feeds = append(subs, c), append(feeds, newFeed(channel, c.subscribe(channel, nil, false)))
	}
	return subs, feeds
}

// checkEveryFeed reads each subscriber's publications up to the last acknowledged one: each
// must have every acknowledged publication, once, in order. (Offsets beyond the acknowledged
// ones may be publications refused and stored all the same: TestRefusedPublicationIsNotStored.)
func checkEveryFeed(t *testing.T, subs []*wsClient, feeds []*feed, led *ledger) {
	t.Helper()
	top := led.highest()
	for i, fd := range feeds {
		if err := fd.readUntil(subs[i], top); err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
		if miss := led.missing(fd.data, 0, top); len(miss) > 0 {
			t.Fatalf("subscriber %d missed what was acknowledged: %v", i, miss)
		}
	}
}

// publishFrom publishes count publications on channel from a client of each node at once,
// recording the acknowledged ones in led. A publication refused with 201 (unavailable, retry
// later) is retried, as a client does, and counted in refused. Every answer must come within
// the broker's Timeout, and a second for a loaded machine. It returns a func that waits for
// the publishers.
func publishFrom(t *testing.T, nodes []*node, channel string, count int, led *ledger, refused *atomic.Int64) (wait func()) {
	var wg sync.WaitGroup
	for i, n := range nodes {
		pub := dialWS(t, n.url)
		wg.Add(1)
		go func() { // owner: the test; waited for by wait
			defer wg.Done()
			for k := 0; k < count && !t.Failed(); { // a failing test stops them early
				data := fmt.Sprintf(`"node %d #%d"`, i, k)
				start := time.Now()
				pos, err := pub.publish(channel, data)
				if took := time.Since(start); took > natsbroker.DefaultTimeout+time.Second {
					t.Errorf("publish %s on node %d answered after %v (%v)", data, i, took, err)
				}
				var perr *protocol.Error
				if errors.As(err, &perr) && perr.Code == protocol.CodeUnavailable {
					refused.Add(1)
					time.Sleep(10 * time.Millisecond) // a client backs off before a retry
					continue
				}
				if err == nil {
					err = led.record(pos, data)
				}
				if err != nil {
					t.Errorf("publish %s on node %d: %v", data, i, err)
					return
				}
				k++
			}
		}()
	}
	return wg.Wait
}

// TestPublicationsReachEveryNode: three nodes on three NATS servers; clients of all three
// publish to one channel at once, and every subscriber on every node gets every publication
// once, in offset order, with the data its publisher was acknowledged for.
func TestPublicationsReachEveryNode(t *testing.T) {
	_, nodes := startClusterNodes(t, 3, hub.Options{})
	subs, feeds := subscribeEach(t, nodes, "feed")
	subs2, feeds2 := subscribeEach(t, nodes, "feed") // two on each node
	subs, feeds = append(subs, subs2...), append(feeds, feeds2...)
	const perNode = 150
	led := newLedger()
	var refused atomic.Int64
	publishFrom(t, nodes, "feed", perNode, led, &refused)()
	t.Logf("%d publications refused with 201 and retried", refused.Load())
	if t.Failed() {
		t.FailNow()
	}
	if top := led.highest(); top != 3*perNode {
		t.Fatalf("the last offset acknowledged is %d, want %d", top, 3*perNode)
	}
	checkEveryFeed(t, subs, feeds, led)
}

// TestRecoverOnAnotherNode: while clients of three nodes publish, a subscriber disconnects from
// one node and reconnects to the next with recover from its last position, three times; each
// time it gets exactly what it missed in the subscribe reply, then the live publications, with
// no hole and nothing twice.
func TestRecoverOnAnotherNode(t *testing.T) {
	_, nodes := startClusterNodes(t, 3, hub.Options{})
	const perNode = 200
	const total = 3 * perNode
	c := dialWS(t, nodes[0].url)
	fd := newFeed("news", c.subscribe("news", nil, false))
	led := newLedger()
	var refused atomic.Int64
	wait := publishFrom(t, nodes, "news", perNode, led, &refused)
	defer func() {
		wait()
		t.Logf("%d publications refused with 201 and retried", refused.Load())
	}()
	for hop := 1; hop <= 3; hop++ {
		if err := fd.readUntil(c, uint64(hop*total/5)); err != nil {
			t.Fatalf("before hop %d: %v", hop, err)
		}
		c.ws.Close() // gone without a close frame, as a dropped link
		last := fd.last
		waitUntil(t, "publications while the subscriber is away", 10*time.Second, func() bool {
			return led.highest() >= last+20 || t.Failed()
		})
		var r protocol.SubscribeResult
		c, r = recoverOn(t, fmt.Sprintf("hop %d to node %d", hop, hop%3), nodes[hop%3].url, fd)
		if r.Offset < last+20 {
			t.Fatalf("hop %d: recovered up to %d; %d was acknowledged before", hop, r.Offset, last+20)
		}
		if miss := led.missing(fd.data, last, r.Offset); len(miss) > 0 {
			t.Fatalf("hop %d: recovery from %d did not hold what was acknowledged: %v", hop, last, miss)
		}
	}
	if err := fd.readUntil(c, total); err != nil {
		t.Fatalf("after the last hop: %v", err)
	}
	wait()
	if miss := led.missing(fd.data, 0, total); len(miss) > 0 {
		t.Fatalf("not what was acknowledged: %v", miss)
	}
}

// TestRecoverAtOnceOnAnotherNode: as a client does on a dropped link, a subscriber reconnects at
// once to the next node, recovering from its last position, ten times while clients of the
// three nodes publish; every node has a subscriber of its own already, so it delivers
// publications live while the newcomer's recovery reads history. Each recovery must succeed and
// give exactly what was missed: no hole between the reply and the live publications, nothing
// twice.
func TestRecoverAtOnceOnAnotherNode(t *testing.T) {
	_, nodes := startClusterNodes(t, 3, hub.Options{})
	for _, n := range nodes {
		dialWS(t, n.url).subscribe("live", nil, false)
	}
	const perNode = 200
	const total = 3 * perNode
	c := dialWS(t, nodes[0].url)
	fd := newFeed("live", c.subscribe("live", nil, false))
	led := newLedger()
	var refused atomic.Int64
	wait := publishFrom(t, nodes, "live", perNode, led, &refused)
	defer wait()
	const hops = 10
	for hop := 1; hop <= hops; hop++ {
		if err := fd.readUntil(c, uint64(hop*total/(hops+2))); err != nil {
			t.Fatalf("before hop %d: %v", hop, err)
		}
		c.ws.Close()
		c, _ = recoverOn(t, fmt.Sprintf("hop %d to node %d", hop, hop%3), nodes[hop%3].url, fd)
	}
	if err := fd.readUntil(c, total); err != nil {
		t.Fatalf("after the last hop: %v", err)
	}
	wait()
	if miss := led.missing(fd.data, 0, total); len(miss) > 0 {
		t.Fatalf("not what was acknowledged: %v", miss)
	}
}

// TestPublishRightAfterSubscribe: a client of one node subscribes to a new channel, and the
// moment its reply comes a client of a node on another NATS server publishes to it, thirty
// times on thirty channels; neither server leads the stream, whose republication must find the
// new interest. The subscribe reply promises the live publications after its top: each must
// arrive, though nothing follows it that would show it missing.
func TestPublishRightAfterSubscribe(t *testing.T) {
	ns, nodes := startClusterNodes(t, 3, hub.Options{})
	leader := streamLeader(t, ns)
	sub, pub := dialWS(t, nodes[(leader+1)%3].url), dialWS(t, nodes[(leader+2)%3].url)
	for i := range 30 {
		ch := fmt.Sprint("fresh-", i)
		fd := newFeed(ch, sub.subscribe(ch, nil, false))
		if _, err := pub.publish(ch, `"first"`); err != nil {
			t.Fatalf("publish to %s: %v", ch, err)
		}
		if err := fd.readUntil(sub, 1); err != nil {
			t.Fatalf("the publication made right after the subscribe: %v", err)
		}
	}
}
