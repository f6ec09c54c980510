package clustertest_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// presenceOf asks a node, through client c, for channel's presence, and returns the connections.
func presenceOf(t *testing.T, c *wsClient, channel string) []string {
	t.Helper()
	var r protocol.PresenceResult
	if err := c.mustCall(protocol.Request{Op: protocol.OpPresence, Channel: channel}).result(&r); err != nil {
		t.Fatalf("presence of %s: %v", channel, err)
	}
	if r.Next != "" || r.Total != len(r.Clients) {
		t.Fatalf("presence of %s in pages: %+v", channel, r)
	}
	var conns []string
	for _, ci := range r.Clients {
		conns = append(conns, ci.Conn)
	}
	return conns
}

// TestPresenceAcrossNodesOverNATS: three nodes on three NATS servers, the third a process of its
// own. Presence, asked on any node, lists the subscribers of all three. Then the third is killed
// (SIGKILL: no goodbye): its subscribers leave the presence of the other two within PresenceTTL
// of its last heartbeat, and their watchers get the leave pushes.
func TestPresenceAcrossNodesOverNATS(t *testing.T) {
	ns := runNATSCluster(t)
	const ttl = time.Second
	a := startNode(t, clusterURL(ns, 0), natsbroker.Options{}, hub.Options{PresenceTTL: ttl})
	b := startNode(t, clusterURL(ns, 1), natsbroker.Options{}, hub.Options{PresenceTTL: ttl})
	child := startChildNode(t, clusterURL(ns, 2), ttl)
	urls := []string{a.url, b.url, child.url}

	var watchers []*wsClient
	for _, u := range urls[:2] {
		w := dialWS(t, u)
		w.subscribe("room", nil, true)
		watchers = append(watchers, w)
	}
	var asker []*wsClient // one client per node, subscribed too
	for _, u := range urls {
		for i := range 2 {
			c := dialWS(t, u)
			c.subscribe("room", nil, false)
			if i == 0 {
				asker = append(asker, c)
			}
		}
	}
	const everyone = 2 + 3*2
	waitUntil(t, "every node's subscribers in the presence of a and b", 10*time.Second, func() bool {
		return len(a.hub.Presence("room")) == everyone && len(b.hub.Presence("room")) == everyone
	})
	var all []string
	waitUntil(t, "every node's subscribers in the child's presence", 10*time.Second, func() bool {
		all = presenceOf(t, asker[2], "room")
		return len(all) == everyone
	})
	var dying []string // the child's subscribers
	for _, conn := range all {
		if strings.HasPrefix(conn, child.name+":") {
			dying = append(dying, conn)
		}
	}
	if len(dying) != 2 {
		t.Fatalf("the child node %s has %d subscribers in presence %v, want 2", child.name, len(dying), all)
	}
	for i, c := range asker[:2] {
		if got := presenceOf(t, c, "room"); !slices.Equal(got, all) {
			t.Fatalf("presence on node %d: %v; on the child: %v", i, got, all)
		}
	}

	child.kill()
	killed := time.Now()
	// The bound: a node is gone once silent for PresenceTTL; it fell silent at most one heartbeat
	// (PresenceTTL/5) before it was killed, and nodes look for silent ones every heartbeat; the
	// leave push waits for the next presence round.
	bound := ttl + ttl/5 + hub.DefaultPresenceInterval + 300*time.Millisecond
	for i, w := range watchers {
		var left []string
		for len(left) < len(dying) {
			f, err := w.next(bound)
			if err != nil {
				t.Fatalf("watcher on node %d, leaves %v of %v: %v", i, left, dying, err)
			}
			if f.str("push") != "presence" {
				continue
			}
			var gone []protocol.ClientInfo
			if err := json.Unmarshal(f["leave"], &gone); err != nil {
				t.Fatalf("presence push %v: %v", f, err)
			}
			for _, ci := range gone {
				if !slices.Contains(dying, ci.Conn) {
					t.Fatalf("watcher on node %d: %s left, and its node lives", i, ci.Conn)
				}
				left = append(left, ci.Conn)
			}
		}
		took := time.Since(killed)
		t.Logf("watcher on node %d: the killed node's subscribers left %v after the kill (PresenceTTL %v)", i, took.Round(time.Millisecond), ttl)
		if took > bound {
			t.Fatalf("watcher on node %d: the killed node's subscribers left after %v, more than %v", i, took, bound)
		}
	}
	for i, n := range []*node{a, b} {
		if got := len(n.hub.Presence("room")); got != everyone-2 {
			t.Fatalf("presence on node %d after the kill: %d, want %d", i, got, everyone-2)
		}
	}
}

// presenceNames is a hub's presence of channel, as connection names.
func presenceNames(h *hub.Hub, channel string) []string {
	var names []string
	for _, ci := range h.Presence(channel) {
		names = append(names, ci.Conn)
	}
	return names
}

// TestPresenceHealsAfterANATSOutage: two nodes on one NATS server; NATS stops, and subscribers
// leave meanwhile, which no other node can hear of. Once NATS is back, both nodes agree again on
// who is in the channel: after an outage shorter than PresenceTTL (the lost leave is noticed
// from the next heartbeat's number), and after a longer one (the other node's subscribers left
// by expiry, and come back from a snapshot).
func TestPresenceHealsAfterANATSOutage(t *testing.T) {
	srv := runNATS(t)
	const ttl = time.Second
	bo := natsbroker.Options{Timeout: 300 * time.Millisecond}
	a := startNode(t, srv.URL(), bo, hub.Options{PresenceTTL: ttl})
	b := startNode(t, srv.URL(), bo, hub.Options{PresenceTTL: ttl})
	dialWS(t, a.url).subscribe("room", nil, false)
	var onB []*wsClient
	for range 3 {
		c := dialWS(t, b.url)
		c.subscribe("room", nil, false)
		onB = append(onB, c)
	}
	agree := func(what string, want int) {
		t.Helper()
		waitUntil(t, what, 10*time.Second, func() bool {
			pa, pb := presenceNames(a.hub, "room"), presenceNames(b.hub, "room")
			return len(pa) == want && slices.Equal(pa, pb)
		})
	}
	agree("both nodes list the 4 subscribers", 4)
	for i, outage := range []time.Duration{ttl / 3, 3 * ttl} {
		srv.stop()
		down := time.Now()
		if err := onB[i].mustCall(protocol.Request{Op: protocol.OpUnsubscribe, Channel: "room"}).result(&struct{}{}); err != nil {
			t.Fatal(err)
		}
		if outage > ttl {
			waitUntil(t, "node b's subscribers gone from node a's presence", 3*ttl, func() bool {
				return len(a.hub.Presence("room")) == 1
			})
		}
		if err := onB[2].answeredFor(down, outage); err != nil { // NATS down meanwhile
			t.Fatal(err)
		}
		srv.restart()
		agree(fmt.Sprintf("both nodes agree after an outage of %v", outage), 3-i)
	}
}
