package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/wsgate/wsgate/gateway/events"
)

// A backend learns of a connection's start and end. Here the Sender keeps its events in an
// in-memory outbox of its own; a cluster passes its NATS broker as Options.Outbox.
func Example() {
	got := make(chan events.Event, 2)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Secret") != "s3cret" {
			http.Error(w, "who are you?", http.StatusUnauthorized) // not acknowledged: retried
			return
		}
		var e events.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- e // a real backend deduplicates on e.ID
	}))
	defer backend.Close()

	s, err := events.New(context.Background(), events.Options{
		URL: backend.URL, Node: "node1", Headers: http.Header{"X-Secret": {"s3cret"}},
	})
	if err != nil {
		panic(err)
	}
	conn := events.ConnectInfo{Client: "42", User: "alice", Transport: "wsgate.v1", Time: time.Now()}
	s.Connected(conn) // from hub.Options.OnConnect: never blocks
	s.Disconnected(events.DisconnectInfo{ConnectInfo: conn, Code: 1000, Reason: "bye"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil { // delivers what is queued first
		panic(err)
	}
	for range 2 {
		e := <-got
		fmt.Print(e.ID, " ", e.User)
		if e.Type == events.TypeDisconnect {
			fmt.Print(" ", e.Code, " ", e.Reason)
		}
		fmt.Println()
	}
	// Output:
	// node1/42/connect alice
	// node1/42/disconnect alice 1000 bye
}
