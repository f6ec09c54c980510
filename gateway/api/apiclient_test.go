package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/wsgate/wsgate/client/apiclient"
	"github.com/wsgate/wsgate/protocol"
)

// TestClientAgainstTheAPI: every method of client/apiclient against the real API over the
// real hub: each sends what the handler reads and reads what it answers.
func TestClientAgainstTheAPI(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	c, err := apiclient.New(e.api+"/api", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := e.dial("alice")
	ws.send(`{"id":1,"op":"subscribe","channel":"lobby"}`)
	ws.next(`"id":1`)

	pos, err := c.Publish(ctx, "lobby", json.RawMessage(`{"a":1}`), "k1")
	if err != nil || pos.Offset != 1 {
		t.Fatalf("Publish: %+v %v", pos, err)
	}
	ws.next(`{"a":1}`)
	res, err := c.Broadcast(ctx, []string{"lobby", "other"}, json.RawMessage(`2`), "")
	if err != nil || len(res) != 2 || res[0].Offset != 2 || res[1].Offset != 1 {
		t.Fatalf("Broadcast: %+v %v", res, err)
	}
	n, err := c.Subscribe(ctx, "alice", "other")
	if err != nil || n != 1 {
		t.Fatalf("Subscribe: %d %v", n, err)
	}
	p, err := c.Presence(ctx, "lobby", "", 0)
	if err != nil || p.Total != 1 || p.Clients[0].User != "alice" {
		t.Fatalf("Presence: %+v %v", p, err)
	}
	st, err := c.PresenceStats(ctx, "other")
	if err != nil || st.Clients != 1 || st.Users != 1 {
		t.Fatalf("PresenceStats: %+v %v", st, err)
	}
	h, err := c.History(ctx, "lobby", &pos, 10)
	if err != nil || len(h.Publications) != 1 || string(h.Publications[0].Data) != "2" {
		t.Fatalf("History: %+v %v", h, err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.Connections != 1 {
		t.Fatalf("Info: %+v %v", info, err)
	}
	n, err = c.Unsubscribe(ctx, "alice", "other")
	if err != nil || n != 1 {
		t.Fatalf("Unsubscribe: %d %v", n, err)
	}
	n, err = c.Disconnect(ctx, "alice", 0, "bye")
	if err != nil || n != 1 {
		t.Fatalf("Disconnect: %d %v", n, err)
	}
	chs, err := c.Channels(ctx, "", "", 0)
	if err != nil || chs.Channels == nil {
		t.Fatalf("Channels: %+v %v", chs, err)
	}
	var ae *apiclient.Error
	if err := c.RemoveHistory(ctx, "lobby"); e.removes && err != nil || !e.removes && (!errors.As(err, &ae) || ae.Status != 404 || ae.Code != protocol.CodeNotAvailable) {
		t.Fatalf("RemoveHistory: %v", err)
	}
	if _, err := c.Publish(ctx, "lobby", json.RawMessage(`1`), "x\x01"); !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("bad key: %v", err)
	}
}
