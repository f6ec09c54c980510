package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/gateway/proxy"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// A backend that knows its users by a session cookie tells wsgate who connects.
func Example() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Wsgate-Secret") != "b4ckend" {
			w.WriteHeader(http.StatusForbidden) // not wsgate
			return
		}
		if sid, err := r.Cookie("sid"); err != nil || sid.Value != "alice-session" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"result":{"user":"alice","info":{"name":"Alice"},"expires_in":3600,"channels":["#alice"]}}`)
	}))
	defer backend.Close()

	p, err := proxy.New(proxy.Config{
		Connect: proxy.Endpoint{URL: backend.URL + "/wsgate/connect"},
		Headers: http.Header{"X-Wsgate-Secret": {"b4ckend"}},
	})
	if err != nil {
		panic(err)
	}
	defer p.CloseIdleConnections()

	// In a server, proxy.ClientOf(conn, name, nil) gives the handshake's headers.
	cl := proxy.Client{Name: "c1", Remote: "203.0.113.9:51234", Header: http.Header{"Cookie": {"sid=alice-session"}}}
	id, err := p.Connect(context.Background(), proxy.ConnectRequest{Client: cl})
	if err != nil {
		panic(err)
	}
	fmt.Println(id.User, string(id.Info), id.Channels)

	cl.Header = http.Header{"Cookie": {"sid=forged"}}
	_, err = p.Connect(context.Background(), proxy.ConnectRequest{Client: cl})
	var d *hub.Disconnect
	if errors.As(err, &d) {
		fmt.Println("refused:", d.Err.Code, d.Err.Message, "then close", d.Code)
	}
	// Output:
	// alice {"name":"Alice"} [#alice]
	// refused: 109 unauthorized then close 4001
}

// The hub's hooks, from a Proxy. (The gateway does this, with its namespaces and JWT beside.)
func Example_hubOptions() {
	p, err := proxy.New(proxy.Config{
		Connect:   proxy.Endpoint{URL: "http://backend.internal/wsgate/connect"},
		Subscribe: proxy.Endpoint{URL: "http://backend.internal/wsgate/subscribe"},
		Publish:   proxy.Endpoint{URL: "http://backend.internal/wsgate/publish", Retries: -1},
		RPC:       proxy.Endpoint{URL: "http://backend.internal/wsgate/rpc"},
	})
	if err != nil {
		panic(err)
	}
	name := func(c *wsgate.Conn) string { return strconv.FormatUint(c.ID(), 10) }
	_ = hub.Options{
		Connect: func(ctx context.Context, c *wsgate.Conn, token string) (*hub.Identity, error) {
			return p.Connect(ctx, proxy.ConnectRequest{Client: proxy.ClientOf(c, name(c), nil), Token: token})
		},
		Authorize: func(ctx context.Context, c *wsgate.Conn, id *hub.Identity, req *protocol.Request) error {
			if req.Op != protocol.OpSubscribe {
				return nil
			}
			return p.Subscribe(ctx, proxy.SubscribeRequest{Client: proxy.ClientOf(c, name(c), id), Channel: req.Channel, Token: req.Token})
		},
		Publish: func(ctx context.Context, c *wsgate.Conn, id *hub.Identity, channel string, data json.RawMessage) (json.RawMessage, error) {
			repl, err := p.Publish(ctx, proxy.PublishRequest{Client: proxy.ClientOf(c, name(c), id), Channel: channel, Data: data})
			if repl == nil && err == nil {
				return data, nil // unchanged
			}
			return repl, err
		},
		RPC: func(ctx context.Context, c *wsgate.Conn, id *hub.Identity, method string, data json.RawMessage) (json.RawMessage, error) {
			return p.RPC(ctx, proxy.RPCRequest{Client: proxy.ClientOf(c, name(c), id), Method: method, Data: data})
		},
	}
}
