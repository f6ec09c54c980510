package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/internal/wstest"
)

// TestMain fails the package if a test leaves a goroutine behind: every Conn's reader must be gone
// once it is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoDone is the seed's business logic: answer "<msg> done" in the frame type received.
var echoDone = wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
	_ = c.Send(m.Type, append(append([]byte(nil), m.Data...), " done"...))
})

// startWsgate serves h with a wsgate.Server on a loopback port and returns it and its ws:// URL.
var startWsgate = wstest.Wsgate

// serve runs h on a loopback port, calls shutdown at cleanup, and returns the ws:// URL.
var serve = wstest.Serve

// dial connects with the client under test and drops the connection at cleanup.
func dial(t testing.TB, url string, o *client.Options) *client.Conn {
	t.Helper()
	c, _, err := client.Dial(ctxT(t, 5*time.Second), url, o)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(c.CloseNow)
	return c
}

// ctxT is a context that ends after d or with the test.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// read reads one message within 5 s.
func read(t testing.TB, c *client.Conn) (wsgate.MessageType, string) {
	t.Helper()
	typ, data, err := c.Read(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(data)
}

// write writes one message within 5 s.
func write(t testing.TB, c *client.Conn, typ wsgate.MessageType, data string) {
	t.Helper()
	if err := c.Write(ctxT(t, 5*time.Second), typ, []byte(data)); err != nil {
		t.Fatalf("write %q: %v", data, err)
	}
}

// readEnd reads until the connection has ended and returns how, failing on a message.
func readEnd(t testing.TB, c *client.Conn) *wsgate.CloseError {
	t.Helper()
	_, data, err := c.Read(ctxT(t, 5*time.Second))
	var ce *wsgate.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("read: got %q, %v; want the end of the connection", data, err)
	}
	return ce
}

// closeRecorder is a wsgate handler that echoes and reports each connection's end.
type closeRecorder struct {
	wsgate.Handler
	closed chan error
}

func newCloseRecorder(h wsgate.Handler) *closeRecorder {
	return &closeRecorder{Handler: h, closed: make(chan error, 16)}
}

func (r *closeRecorder) OnClose(c *wsgate.Conn, err error) { r.closed <- err }

// next returns how the server saw the next connection end.
func (r *closeRecorder) next(t testing.TB) *wsgate.CloseError {
	t.Helper()
	select {
	case err := <-r.closed:
		var ce *wsgate.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("server OnClose: %v, want a *CloseError", err)
		}
		return ce
	case <-time.After(5 * time.Second):
		t.Fatal("server saw no close within 5s")
		return nil
	}
}
