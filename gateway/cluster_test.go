package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/gorilla/websocket"
	"github.com/wsgate/wsgate"
	natsbroker "github.com/wsgate/wsgate/broker/nats"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// runNATS starts a NATS server with JetStream in process, on a random port.
func runNATS(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{ServerName: "gw", Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start() // owner: the test; stopped at cleanup
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// startNATSNode is a gateway in front of a hub on the NATS broker at url.
func startNATSNode(t *testing.T, url string, cfg *gateway.Config) *natsNode {
	t.Helper()
	b, err := natsbroker.New(&natsbroker.Options{URL: url, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(context.Background(), cfg, gateway.Deps{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	opts := hub.Options{Logger: quiet, PingInterval: -1, PresenceTTL: time.Second}
	gw.HubOptions(&opts)
	h, err := hub.New(context.Background(), b, &opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Bind(h); err != nil {
		t.Fatal(err)
	}
	ws, err := wsgate.NewServer(gw.Handler(h.Handler(echo)), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol},
		Admit: gw.Admit, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(ws)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ws.Shutdown(ctx)
		ts.Close()
		_ = gw.Close(ctx)
		_ = h.Close(ctx)
	})
	return &natsNode{url: "ws" + strings.TrimPrefix(ts.URL, "http") + "/", gw: gw}
}

type natsNode struct {
	url string
	gw  *gateway.Gateway
}

// The backend API's user operations reach the user's connections on every node: the API call
// comes to node A, alice is connected to node B only.
func TestUserOperationsAcrossNodes(t *testing.T) {
	url := runNATS(t)
	cfg := &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}}}
	a, b := startNATSNode(t, url, cfg), startNATSNode(t, url, cfg)
	alice := dialV1(t, b.url, nil)
	alice.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, "")})
	raw := dialRaw(t, b.url, http.Header{"Authorization": {"Bearer " + token(t, "alice", time.Hour, "")}})
	// The raw connection is registered by OnOpen, after the upgrade's answer: one echo (OnMessage
	// follows OnOpen) makes sure it is, before the disconnect below counts it.
	if err := raw.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := raw.ReadMessage(); err != nil {
		t.Fatalf("raw echo: %v", err)
	}
	_ = raw.SetReadDeadline(time.Time{})

	ctx := context.Background()
	waitPeer(t, a)
	n, err := a.gw.Node().Subscribe(ctx, "alice", "news:alice")
	if err != nil || n != 1 {
		t.Fatalf("subscribe across nodes: %d, %v; want 1 (the raw connection cannot subscribe)", n, err)
	}
	waitPush(t, alice, "subscribe", "news:alice")
	if n, err := a.gw.Node().Unsubscribe(ctx, "alice", "news:alice"); err != nil || n != 1 {
		t.Fatalf("unsubscribe across nodes: %d, %v", n, err)
	}
	waitPush(t, alice, "unsubscribe", "news:alice")
	if n, err := a.gw.Node().Subscribe(ctx, "nobody", "x"); err != nil || n != 0 {
		t.Fatalf("subscribe of a user not connected: %d, %v", n, err)
	}
	n, err = a.gw.Node().Disconnect(ctx, "alice", 0, "bye")
	if err != nil || n != 2 {
		t.Fatalf("disconnect across nodes: %d, %v; want both of alice's connections", n, err)
	}
	if code := closedWith(t, alice.ws); code != protocol.CloseDisconnected {
		t.Fatalf("alice's wsgate.v1 connection closed with %d, want %d", code, protocol.CloseDisconnected)
	}
	if code := closedWith(t, raw); code != protocol.CloseDisconnected {
		t.Fatalf("alice's raw connection closed with %d, want %d", code, protocol.CloseDisconnected)
	}
}

// waitPush reads until the push of kind for channel.
// waitPeer waits until node a knows of the other node: the nodes learn of each other by their
// heartbeats.
func waitPeer(t *testing.T, a *natsNode) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, _ := a.gw.Node().Info(context.Background())
		if len(info.Nodes) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node A knows of %v", info.Nodes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The API's unsubscribe of a user connected to another node ends the connection's access to
// the private channel there: access is that node's live subscription.
func TestAPIUnsubscribeAcrossNodesEndsPrivateChannelAccess(t *testing.T) {
	url := runNATS(t)
	cfg := namespacesConfig()
	a, b := startNATSNode(t, url, cfg), startNATSNode(t, url, cfg)
	alice := dialV1(t, b.url, nil)
	alice.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, "")})
	alice.ok(map[string]any{"op": "subscribe", "channel": "private:a", "token": channelToken(t, "alice", "private:a")})
	alice.ok(map[string]any{"op": "history", "channel": "private:a"})
	waitPeer(t, a)
	if n, err := a.gw.Node().Unsubscribe(context.Background(), "alice", "private:a"); err != nil || n != 1 {
		t.Fatalf("unsubscribe across nodes: %d, %v", n, err)
	}
	waitPush(t, alice, "unsubscribe", "private:a")
	alice.fails(map[string]any{"op": "history", "channel": "private:a"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "publish", "channel": "private:a", "data": 1}, protocol.CodeForbidden)
}

func waitPush(t *testing.T, c *v1, kind, channel string) {
	t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m map[string]any
		if err := c.ws.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for the %s push of %s: %v", kind, channel, err)
		}
		if m["push"] == kind && m["channel"] == channel {
			return
		}
	}
}
