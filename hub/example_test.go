package hub_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// A pub/sub server in one process: wsgate.v1 clients get channels, raw clients the app's handler.
func Example() {
	ctx := context.Background()
	h, err := hub.New(ctx, memory.New(nil), &hub.Options{
		Authorize: func(_ context.Context, _ *wsgate.Conn, _ *hub.Identity, req *protocol.Request) error {
			if req.Op == protocol.OpPublish && strings.HasPrefix(req.Channel, "news") {
				return fmt.Errorf("only the server publishes news")
			}
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	defer h.Close(ctx)
	srv, _ := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(ctx)

	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	read := func() { _, p, _ := ws.ReadMessage(); fmt.Println(string(p)) }

	ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"op":"publish","channel":"news","data":"x"}`))
	read()
	ws.WriteMessage(websocket.TextMessage, []byte(`{"id":2,"op":"subscribe","channel":"news"}`))
	_, _, _ = ws.ReadMessage() // the reply, with the channel's epoch
	h.Publish(ctx, "news", []byte(`{"headline":"wsgate ships"}`))
	_, p, _ := ws.ReadMessage()
	fmt.Println(strings.Contains(string(p), `"offset":1,"data":{"headline":"wsgate ships"}`))
	// Output:
	// {"id":1,"error":{"code":104,"message":"only the server publishes news"}}
	// true
}
