package gateway_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// The gateway between an application's server and the hub: tokens, a read-only namespace and a
// per-user cap.
func Example() {
	cfg := &gateway.Config{
		Auth:       gateway.Auth{JWT: gateway.JWT{HMACSecret: "a secret of at least 32 bytes, from the env"}},
		Namespaces: []gateway.Namespace{{Prefix: "news:", ChannelRules: gateway.ChannelRules{Publish: new(bool)}}},
		Limits:     gateway.Limits{ConnectionsPerUser: 5},
	}
	ctx := context.Background()
	gw, err := gateway.New(ctx, cfg, gateway.Deps{})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Close(ctx)
	var opts hub.Options
	gw.HubOptions(&opts) // Connect, Authorize, Channel... from the config
	h, err := hub.New(ctx, memory.New(&memory.Options{Namespaces: cfg.BrokerNamespaces(memory.DefaultHistorySize)}), &opts)
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close(ctx)
	if err := gw.Bind(h); err != nil {
		log.Fatal(err)
	}
	srv, err := wsgate.NewServer(gw.Handler(h.Handler(nil)), &wsgate.Config{
		Subprotocols: []string{protocol.Subprotocol},
		Admit:        gw.Admit, // raw connections' tokens, handshakes per address
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/ws", srv)
}

// Decode reads a parsed config file and names every bad key; Check what cannot work.
func ExampleDecode() {
	cfg, err := gateway.Decode(map[string]any{
		"namespaces": []any{map[string]any{"prefix": "chat:", "history_size": -1, "presense": false}},
	})
	fmt.Println(err)
	fmt.Println(cfg.Check())
	// Output:
	// namespaces[0].presense: unknown key
	// namespaces[0].history_size: must not be negative
}
