package clustertest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
)

// TestPresenceOfABigChannelReachesALateNode: a node's presence of one channel larger than
// NATS's max payload (1 MiB) reaches a node that starts later, split across messages. (Found by
// review: one channel's members went in one message, which NATS refused, and the late node took
// the rest of the snapshot for all of it.) Here 1,100 subscribers with user names of MaxUserLen
// bytes: 1.1 MB, the size of ~35k subscribers with short names.
func TestPresenceOfABigChannelReachesALateNode(t *testing.T) {
	ns := runNATS(t)
	long := strings.Repeat("u", 10_000) // cut to hub.MaxUserLen
	b := startNode(t, ns.URL(), natsbroker.Options{}, hub.Options{PresenceTTL: time.Second,
		UserID: func(*wsgate.Conn) string { return long }})
	const n = 1100
	for range n {
		c := dialWS(t, b.url)
		c.subscribe("big", nil, false)
	}
	if u := b.hub.Presence("big")[0].User; len(u) != hub.MaxUserLen {
		t.Fatalf("a user name of %d bytes kept, bound %d", len(u), hub.MaxUserLen)
	}
	c := dialWS(t, b.url)
	c.subscribe("small", nil, false)
	a := startNode(t, ns.URL(), natsbroker.Options{}, hub.Options{PresenceTTL: time.Second})
	deadline := time.Now().Add(8 * time.Second)
	for len(a.hub.Presence("big")) != n || len(a.hub.Presence("small")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the late node's presence: big %d of %d, small %d of 1, after 8 s",
				len(a.hub.Presence("big")), n, len(a.hub.Presence("small")))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
