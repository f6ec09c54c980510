package clustertest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// TestIdentityInPresenceOverNATS: two nodes on one NATS server; a connection's identity (user
// and info, from the Connect hook) shows in the other node's presence and join pushes.
func TestIdentityInPresenceOverNATS(t *testing.T) {
	ns := runNATS(t)
	connect := func(_ context.Context, _ *wsgate.Conn, token string) (*hub.Identity, error) {
		return &hub.Identity{User: token, Info: json.RawMessage(`{"name":"` + strings.ToUpper(token) + `"}`)}, nil
	}
	ho := hub.Options{Connect: connect, PresenceTTL: time.Second}
	a := startNode(t, ns.URL(), natsbroker.Options{}, ho)
	b := startNode(t, ns.URL(), natsbroker.Options{}, ho)
	watcher := dialWS(t, a.url)
	watcher.mustCall(protocol.Request{Op: protocol.OpConnect, Token: "watch"})
	watcher.subscribe("room", nil, true)
	c := dialWS(t, b.url)
	var res protocol.ConnectResult
	if err := c.mustCall(protocol.Request{Op: protocol.OpConnect, Token: "heidi"}).result(&res); err != nil || res.User != "heidi" {
		t.Fatalf("connect: %+v %v", res, err)
	}
	c.subscribe("room", nil, false)
	waitUntil(t, "heidi in a's presence", 10*time.Second, func() bool { return len(a.hub.Presence("room")) == 2 })
	var r protocol.PresenceResult
	if err := watcher.mustCall(protocol.Request{Op: protocol.OpPresence, Channel: "room"}).result(&r); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ci := range r.Clients {
		if ci.User == "heidi" {
			found = string(ci.Info) == `{"name":"HEIDI"}`
		}
	}
	if !found || len(r.Clients) != 2 {
		t.Fatalf("presence on a: %+v", r.Clients)
	}
	if clients, users := a.hub.PresenceStats("room"); clients != 2 || users != 2 {
		t.Fatalf("stats on a: %d clients, %d users", clients, users)
	}
	// The join pushes of the watcher: its own, then heidi's with her info.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f, err := watcher.next(time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		if f.str("push") != "presence" {
			continue
		}
		var joined []protocol.ClientInfo
		_ = json.Unmarshal(f["join"], &joined)
		for _, ci := range joined {
			if ci.User == "heidi" {
				if string(ci.Info) != `{"name":"HEIDI"}` {
					t.Fatalf("join push %v", f)
				}
				return
			}
		}
	}
	t.Fatal("no join push of heidi")
}
