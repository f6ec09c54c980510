package hub_test

import (
	"context"
	"testing"

	"github.com/wsgate/wsgate/hub"
)

// TestSubscribedFollowsTheSubscription: Subscribed is true from a subscribe's success (the
// client's or a server-side one) until its unsubscribe (the client's or a server-side one), and
// false for a channel never subscribed.
func TestSubscribedFollowsTheSubscription(t *testing.T) {
	e := start(t, &hub.Options{}, nil)
	c := e.dial(t)
	conn := e.connOf(t, c)
	if e.hub.Subscribed(conn, "room") {
		t.Fatal("subscribed before any subscribe")
	}
	c.call("subscribe", `,"channel":"room"`, nil)
	if !e.hub.Subscribed(conn, "room") {
		t.Fatal("not subscribed after the client's subscribe")
	}
	c.call("unsubscribe", `,"channel":"room"`, nil)
	if e.hub.Subscribed(conn, "room") {
		t.Fatal("subscribed after the client's unsubscribe")
	}
	if err := e.hub.Subscribe(context.Background(), conn, "side"); err != nil {
		t.Fatal(err)
	}
	if !e.hub.Subscribed(conn, "side") {
		t.Fatal("not subscribed after a server-side subscribe")
	}
	if err := e.hub.Unsubscribe(conn, "side"); err != nil {
		t.Fatal(err)
	}
	if e.hub.Subscribed(conn, "side") || e.hub.Subscribed(conn, "other") {
		t.Fatal("subscribed after a server-side unsubscribe, or to a channel never subscribed")
	}
	if raw := e.dialRaw(t); e.hub.Subscribed(raw, "room") {
		t.Fatal("a raw connection subscribed")
	}
}
