package pubsub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/client/pubsub"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// A session of two nodes, of which the first is down: it connects to the second, subscribes, and
// gets its own publication.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, _ := hub.New(ctx, memory.New(nil), nil)
	defer h.Close(ctx)
	srv, _ := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(ctx)
	down := httptest.NewServer(nil)
	down.Close()

	got := make(chan pubsub.Publication, 1)
	subscribed := make(chan struct{})
	s, _ := pubsub.New([]string{"ws" + strings.TrimPrefix(down.URL, "http"), "ws" + strings.TrimPrefix(hs.URL, "http")}, &pubsub.Options{
		InOrder:       true,
		OnSubscribed:  func(pubsub.Subscribed) { close(subscribed) },
		OnPublication: func(p pubsub.Publication) { got <- p },
	})
	_ = s.Subscribe("chat", nil)
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	<-subscribed
	pos, err := s.Publish(ctx, "chat", json.RawMessage(`{"text":"hi"}`))
	fmt.Println(pos.Offset, err)
	p := <-got
	fmt.Println(p.Channel, p.Offset, string(p.Data))
	cancel()
	fmt.Println(<-ran)
	// Output:
	// 1 <nil>
	// chat 1 {"text":"hi"}
	// <nil>
}
