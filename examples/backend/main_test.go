package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/client/apiclient"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The walk-through end to end: wsgate asks this backend who a connection is, from its session
// cookie, and the backend publishes through wsgate's API.
func TestWalkThrough(t *testing.T) {
	const key = "dev-key-0123456789"
	mux := http.NewServeMux()
	wsURL := httptest.NewServer(mux) // wsgate: /ws and /api
	defer wsURL.Close()
	be := httptest.NewUnstartedServer(nil)
	beURL := "http://" + be.Listener.Addr().String()
	gw, err := gateway.New(context.Background(), &gateway.Config{Auth: gateway.Auth{ConnectURL: beURL + "/wsgate/connect"}}, gateway.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close(context.Background())
	opts := hub.Options{PingInterval: -1}
	gw.HubOptions(&opts)
	h, err := hub.New(context.Background(), memory.New(nil), &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	if err := gw.Bind(h); err != nil {
		t.Fatal(err)
	}
	ws, err := wsgate.NewServer(gw.Handler(h.Handler(nil)), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Admit: gw.Admit})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Shutdown(context.Background())
	ah, err := api.New(gw.Node(), api.Options{Keys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/ws", ws)
	mux.Handle("/api/", ah)

	client, err := apiclient.New(wsURL.URL+"/api", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	be.Config.Handler = backend(client, wsURL.URL+"/chat.html")
	be.Start()
	defer be.Close()

	wsAddr := "ws" + strings.TrimPrefix(wsURL.URL, "http") + "/ws"
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
	// Forged cookies: a bare name, another's name with alice's signature, a made-up signature.
	for _, forged := range []string{"session=alice", "session=bob." + strings.SplitN(sign("alice"), ".", 2)[1], "session=alice.AAAA", "other=alice"} {
		c, _, err := d.Dial(wsAddr, http.Header{"Cookie": {forged}})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_ = c.WriteJSON(map[string]any{"id": 1, "op": "connect"})
		var m map[string]any
		if err := c.ReadJSON(&m); err != nil || m["error"] == nil || m["error"].(map[string]any)["code"] != float64(protocol.CodeUnauthorized) {
			t.Fatalf("forged cookie %q: connect answered %v %v", forged, m, err)
		}
		_, _, err = c.ReadMessage()
		if ce := new(websocket.CloseError); !errors.As(err, &ce) || ce.Code != protocol.CloseUnauthorized {
			t.Fatalf("forged cookie %q: ended with %v, want close %d", forged, err, protocol.CloseUnauthorized)
		}
		c.Close()
	}

	// A name that would make "#"+name someone else's channel ("bob,alice": bob's and alice's) is refused.
	for _, bad := range []string{"bob,alice", "%23alice", "a.b", ""} {
		resp, err := http.Get(beURL + "/login?name=" + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("login as %q: %d, want 400", bad, resp.StatusCode)
		}
	}

	// alice logs in: the backend sets her signed session cookie and publishes through the API.
	login, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(beURL + "/login?name=alice")
	if err != nil {
		t.Fatal(err)
	}
	login.Body.Close()
	cookies := login.Cookies()
	if len(cookies) != 1 || cookies[0].Name != "session" {
		t.Fatalf("login set %v", cookies)
	}
	c, _, err := d.Dial(wsAddr, http.Header{"Cookie": {cookies[0].Name + "=" + cookies[0].Value}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_ = c.WriteJSON(map[string]any{"id": 1, "op": "connect"})
	var m map[string]any
	if err := c.ReadJSON(&m); err != nil || m["result"].(map[string]any)["user"] != "alice" {
		t.Fatalf("connect: %v %v", m, err)
	}
	_ = c.WriteJSON(map[string]any{"id": 2, "op": "subscribe", "channel": "chat:lobby"})
	if err := c.ReadJSON(&m); err != nil || m["error"] != nil {
		t.Fatalf("subscribe: %v %v", m, err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(beURL + "/login?name=bob")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "session=bob.") {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Header)
	}
	for {
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for the publication: %v", err)
		}
		if m["push"] == "pub" && m["channel"] == "chat:lobby" {
			break
		}
	}
	if d, _ := m["data"].(map[string]any); d == nil || d["text"] != "bob logged in" {
		t.Fatalf("publication %v", m)
	}
	noRedirect.CloseIdleConnections()
}
