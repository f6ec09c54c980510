package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
)

// TestDialAny: the endpoints are tried in order until one completes the handshake; when none
// does, the error names each with its failure; a bad URL ends it at once.
func TestDialAny(t *testing.T) {
	_, live := startWsgate(t, echoDone, nil)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	dead := "ws" + strings.TrimPrefix(down.URL, "http")
	busy := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}), nil)

	c, i, err := client.DialAny(ctxT(t, 5*time.Second), []string{dead, busy, live}, nil)
	if err != nil || i != 2 {
		t.Fatalf("DialAny: endpoint %d, %v; want 2", i, err)
	}
	t.Cleanup(c.CloseNow)
	write(t, c, wsgate.Text, "hi")
	if _, got := read(t, c); got != "hi done" {
		t.Fatalf("read %q", got)
	}

	_, i, err = client.DialAny(ctxT(t, 5*time.Second), []string{dead, busy}, nil)
	var he *client.HandshakeError
	if i != -1 || !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(err.Error(), dead+": ") || !strings.Contains(err.Error(), busy+": ") {
		t.Fatalf("DialAny of two down: %d, %v; want both failures, the 503 as a *HandshakeError", i, err)
	}

	if _, _, err := client.DialAny(ctxT(t, 5*time.Second), []string{"http://x", live}, nil); !errors.Is(err, client.ErrBadURL) {
		t.Fatalf("a bad URL first: %v; want ErrBadURL at once", err)
	}
	if _, _, err := client.DialAny(ctxT(t, 5*time.Second), nil, nil); !errors.Is(err, client.ErrBadURL) {
		t.Fatalf("no URL: %v", err)
	}
}
