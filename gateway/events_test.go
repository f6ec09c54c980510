package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/events"
	"github.com/wsgate/wsgate/protocol"
)

// Every identified connection's connect and disconnect reach backend.events_url, the disconnect
// with its close code: wsgate.v1 and raw alike.
func TestEvents(t *testing.T) {
	got := make(chan events.Event, 16)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(gateway.SecretHeader) != "backend-secret-0123" {
			http.Error(w, "who are you?", 403)
			return
		}
		var ev events.Event
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &ev); err != nil {
			http.Error(w, "bad event", 400)
			return
		}
		got <- ev
	}))
	defer be.Close()
	cfg := &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}}, Backend: gateway.Backend{EventsURL: be.URL, Secret: "backend-secret-0123"}}
	s := start(t, cfg, nil)
	next := func() events.Event {
		t.Helper()
		select {
		case ev := <-got:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
			return events.Event{}
		}
	}
	c := dialV1(t, s.url, nil)
	c.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, "")})
	if ev := next(); ev.Type != events.TypeConnect || ev.User != "alice" || ev.Transport != protocol.Subprotocol {
		t.Fatalf("connect event %+v", ev)
	}
	_ = c.ws.WriteControl(8, []byte{0x0f, 0xa0, 'b', 'y', 'e'}, time.Now().Add(time.Second)) // close 4000 "bye"
	if ev := next(); ev.Type != events.TypeDisconnect || ev.User != "alice" || ev.Code != 4000 || ev.Reason != "bye" {
		t.Fatalf("disconnect event %+v", ev)
	}
	raw := dialRaw(t, s.url, http.Header{"Authorization": {"Bearer " + token(t, "bob", time.Hour, "")}})
	if ev := next(); ev.Type != events.TypeConnect || ev.User != "bob" || ev.Transport != "raw" {
		t.Fatalf("raw connect event %+v", ev)
	}
	raw.Close() // no close frame: 1006
	if ev := next(); ev.Type != events.TypeDisconnect || ev.User != "bob" || ev.Code != 1006 {
		t.Fatalf("raw disconnect event %+v", ev)
	}
}
