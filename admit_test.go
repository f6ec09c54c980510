package wsgate_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/wsgate/wsgate"
)

// Config.Admit decides on an upgrade before it happens: a refusal is an HTTP answer the client
// can read (status, body, Retry-After), and what it admits with is the connection's Auth.
func TestAdmit(t *testing.T) {
	type who struct{ user string }
	admit := func(r *http.Request) (any, error) {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			return &who{"alice"}, nil
		case "Bearer slow-down":
			return nil, &wsgate.RejectError{Status: http.StatusTooManyRequests, Message: "too many handshakes", RetryAfter: 1500 * time.Millisecond}
		case "":
			return nil, &wsgate.RejectError{Status: http.StatusUnauthorized, Message: "token required"}
		}
		return nil, errors.New("backend exploded: secret detail")
	}
	users := make(chan string, 1)
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		users <- c.Auth().(*who).user
	})
	ts := startServer(t, h, &wsgate.Config{Admit: admit})

	cases := []struct {
		auth, body, retry string
		status            int
	}{
		{"", "websocket: token required\n", "", http.StatusUnauthorized},
		{"Bearer slow-down", "websocket: too many handshakes\n", "2", http.StatusTooManyRequests},
		{"Bearer bad", "websocket: forbidden\n", "", http.StatusForbidden}, // the error's text is not sent
	}
	for _, tc := range cases {
		hdr := http.Header{}
		if tc.auth != "" {
			hdr.Set("Authorization", tc.auth)
		}
		_, resp, err := websocket.DefaultDialer.Dial(ts.URL, hdr)
		if err == nil || resp == nil {
			t.Fatalf("%q: upgraded (err %v), want %d", tc.auth, err, tc.status)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(body) != tc.body || resp.Header.Get("Retry-After") != tc.retry {
			t.Errorf("%q: answered %d %q Retry-After %q, want %d %q %q", tc.auth, resp.StatusCode, body,
				resp.Header.Get("Retry-After"), tc.status, tc.body, tc.retry)
		}
		if strings.Contains(string(body), "secret") {
			t.Errorf("%q: the error's text reached the client: %q", tc.auth, body)
		}
	}
	if n := ts.Stats().Connections; n != 0 {
		t.Fatalf("%d connections after refusals, want 0", n)
	}

	ws := dial(t, ts.URL, http.Header{"Authorization": {"Bearer good"}})
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-users:
		if u != "alice" {
			t.Fatalf("Auth named %q, want alice", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message reached the handler")
	}
}

// Within Admit, ClientAddr is the address the Server counts the client by: behind a trusted
// proxy the one X-Forwarded-For names, from anyone else the peer's, whatever it claims.
func TestClientAddrInAdmit(t *testing.T) {
	got := make(chan string, 1)
	admit := func(r *http.Request) (any, error) {
		got <- wsgate.ClientAddr(r).String()
		return nil, nil
	}
	for _, tc := range []struct {
		trusted []string
		want    string
	}{{[]string{"127.0.0.0/8"}, "203.0.113.9"}, {nil, "127.0.0.1"}} {
		ts := startServer(t, echoOrClose, &wsgate.Config{Admit: admit, TrustedProxies: tc.trusted})
		ws := dial(t, ts.URL, http.Header{"X-Forwarded-For": {"203.0.113.9"}})
		ws.Close()
		if a := <-got; a != tc.want {
			t.Errorf("trusted %v: ClientAddr %s, want %s", tc.trusted, a, tc.want)
		}
	}
}
