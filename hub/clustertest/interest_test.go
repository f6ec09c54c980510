package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// connectNATS makes a NATS connection for a node's broker (Options.Conn), so that the test can
// read its counters; it is closed at the end of the test, after the node.
func connectNATS(t *testing.T, url string) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect(url, natsgo.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestNoSubscriberNoTraffic: three nodes on three NATS servers; node b publishes 1,000
// publications to a channel that node a has a subscriber of and node c has none (its
// subscribers left it): c's NATS connection receives none of them, while a's receives them all.
func TestNoSubscriberNoTraffic(t *testing.T) {
	ns := runNATSCluster(t)
	// Presence heartbeats would also reach c: with an hour's PresenceTTL, none comes meanwhile.
	ho := hub.Options{PresenceTTL: time.Hour}
	bo := natsbroker.Options{Replicas: 3}
	ncA, ncC := connectNATS(t, ns[0].URL()), connectNATS(t, ns[2].URL())
	bo.Conn = ncA
	a := startNode(t, "", bo, ho)
	bo.Conn = nil
	b := startNode(t, clusterURL(ns, 1), bo, ho)
	bo.Conn = ncC
	c := startNode(t, "", bo, ho)

	const ch = "busy"
	sub := dialWS(t, a.url)
	fd := newFeed(ch, sub.subscribe(ch, nil, false))
	ctx := context.Background()
	// c had two subscribers of the channel, which got a publication: one unsubscribed and keeps
	// another channel's, the other's link dropped.
	left, dropped := dialWS(t, c.url), dialWS(t, c.url)
	left.subscribe("quiet", nil, false)
	leftFeed, droppedFeed := newFeed(ch, left.subscribe(ch, nil, false)), newFeed(ch, dropped.subscribe(ch, nil, false))
	if _, err := b.hub.Publish(ctx, ch, []byte(`"before"`)); err != nil {
		t.Fatal(err)
	}
	if err := leftFeed.readUntil(left, 1); err != nil {
		t.Fatal(err)
	}
	if err := droppedFeed.readUntil(dropped, 1); err != nil {
		t.Fatal(err)
	}
	if err := left.mustCall(protocol.Request{Op: protocol.OpUnsubscribe, Channel: ch}).result(&struct{}{}); err != nil {
		t.Fatal(err)
	}
	dropped.ws.Close()
	// Presence settles: every node knows every other node's subscribers.
	waitUntil(t, "presence on every node", 10*time.Second, func() bool {
		for _, n := range []*node{a, b, c} {
			if len(n.hub.Presence(ch)) != 1 || len(n.hub.Presence("quiet")) != 1 {
				return false
			}
		}
		return true
	})

	// Presence messages still reach c (a late snapshot, say): a second subscription to them on
	// c's connection counts them, each of which c receives twice from then on.
	presence, err := ncC.SubscribeSync("wsgate.x.>")
	if err != nil {
		t.Fatal(err)
	}
	defer presence.Unsubscribe()
	counts := func() (inA, inC uint64, inPresence int) {
		for _, nc := range []*natsgo.Conn{ncA, ncC} {
			if err := nc.Flush(); err != nil { // what the server had for it has arrived
				t.Fatal(err)
			}
		}
		p, _, err := presence.Pending()
		if err != nil {
			t.Fatal(err)
		}
		return ncA.Stats().InMsgs, ncC.Stats().InMsgs, p
	}
	inA, inC, inPresence := counts()
	const n = 1000
	refused := 0
	for i := 0; i < n; {
		_, err := b.hub.Publish(ctx, ch, fmt.Appendf(nil, `"pub %d"`, i))
		var perr *protocol.Error
		switch {
		case err == nil:
			i++
		case errors.As(err, &perr) && perr.Code == protocol.CodeUnavailable && refused < 100:
			refused++ // retried, as a client does (TestSequentialPublishersAreNotRefused)
		default:
			t.Fatal(err)
		}
	}
	if err := fd.readUntil(sub, n+1); err != nil {
		t.Fatal(err)
	}
	endA, endC, endPresence := counts()
	gotA, presenceC := endA-inA, endPresence-inPresence
	gotC := endC - inC - 2*uint64(presenceC)
	t.Logf("NATS messages received while b published %d (%d refused and retried): node a %d, node c %d and %d of presence",
		n, refused, gotA, gotC, presenceC)
	if gotA < n {
		t.Fatalf("node a received %d NATS messages for %d publications it delivered", gotA, n)
	}
	if gotC != 0 {
		t.Fatalf("node c, without a subscriber of %s, received %d NATS messages while b published %d to it", ch, gotC, n)
	}
}
