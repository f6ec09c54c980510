package wsgate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
)

// TestMain fails the package if any test leaves a goroutine behind: every connection, writer and
// heartbeat must be gone once its server has shut down.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoDone is the seed's business logic: answer "<msg> done" in the frame type received.
var echoDone = wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
	_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
})

// testServer is a wsgate.Server behind a real loopback listener.
type testServer struct {
	*wsgate.Server
	http *httptest.Server
	URL  string // ws://127.0.0.1:port/ws
}

func startServer(t testing.TB, h wsgate.Handler, cfg *wsgate.Config) *testServer {
	t.Helper()
	if cfg == nil {
		cfg = &wsgate.Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	srv, err := wsgate.NewServer(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	hs := httptest.NewServer(mux)
	ts := &testServer{Server: srv, http: hs, URL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return ts
}

// dial connects with gorilla/websocket, an independent implementation.
func dial(t testing.TB, url string, h http.Header) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
