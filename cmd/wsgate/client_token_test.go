package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// TestClientTokenRaw: in raw mode -token and -token-env go as "Authorization: Bearer", which a
// server's Admit hook checks before the upgrade; a missing or wrong one is refused with 401.
func TestClientTokenRaw(t *testing.T) {
	url := startWsgate(t, replyWith(func(c *wsgate.Conn, m wsgate.Message) string {
		return c.Auth().(string) + " says " + string(m.Data)
	}), &wsgate.Config{Admit: func(r *http.Request) (any, error) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			return nil, &wsgate.RejectError{Status: http.StatusUnauthorized, Message: "bad token"}
		}
		return "alice", nil
	}})
	out, _ := runClientT(t, "", 0, "-q", "-token", "s3cret", url, "-x", "hi")
	if out != "alice says hi\n" {
		t.Fatalf("stdout %q", out)
	}
	t.Setenv("WSGATE_TEST_TOKEN", "s3cret")
	if out, _ := runClientT(t, "", 0, "-q", "-token-env", "WSGATE_TEST_TOKEN", url, "-x", "hi"); out != "alice says hi\n" {
		t.Fatalf("stdout %q", out)
	}
	if _, stderr := runClientT(t, "", 1, "-q", "-token", "wrong", url, "-x", "hi"); !strings.Contains(stderr, "401 Unauthorized") || !strings.Contains(stderr, "bad token") {
		t.Fatalf("stderr %q", stderr)
	}
	for _, args := range [][]string{
		{"-token", "a", "-token-env", "WSGATE_TEST_TOKEN"},
		{"-token-env", "WSGATE_TEST_UNSET"},
		{"-token", "a", "-H", "Authorization: Basic x"},
	} {
		if _, stderr := runClientT(t, "", 2, append(args, url, "-x", "hi")...); !strings.Contains(stderr, "token") {
			t.Errorf("%q: stderr %q", args, stderr)
		}
	}
}

// TestClientTokenPubSub: with -sub the token goes in a wsgate.v1 connect, and the channels the
// server subscribes from it are printed like the others; a refused token ends with status 1.
func TestClientTokenPubSub(t *testing.T) {
	h, err := hub.New(context.Background(), memory.New(nil), &hub.Options{
		Connect: func(_ context.Context, _ *wsgate.Conn, token string) (*hub.Identity, error) {
			if token != "alice-token" {
				return nil, protocol.Errorf(protocol.CodeUnauthorized, "unknown token")
			}
			return &hub.Identity{User: "alice", ExpiresAt: time.Now().Add(time.Hour), Channels: []string{"#alice"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	url := startWsgate(t, h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}})

	stdin, w := io.Pipe()
	r := startClient(t, stdin, "-token", "alice-token", "-sub", "chat", url)
	r.stderr.waitFor(t, `identified: user "alice"`)
	r.stderr.waitFor(t, "subscribed: #alice at")
	r.stderr.waitFor(t, "subscribed: chat at")
	if _, err := h.Publish(context.Background(), "#alice", []byte(`"for alice"`)); err != nil {
		t.Fatal(err)
	}
	r.stdout.waitFor(t, `{"channel":"#alice","epoch":`)
	r.stdout.waitFor(t, `"offset":1,"data":"for alice"}`)
	w.Close()
	if err, code := r.result(t); code != 0 {
		t.Fatalf("exit %d: %v\n%s", code, err, r.stderr.String())
	}

	stdin, w = io.Pipe() // left open: the refusal ends the client
	defer w.Close()
	r = startClient(t, stdin, "-q", "-token", "forged", "-sub", "chat", url)
	err, code := r.result(t)
	if code != 1 || !strings.Contains(err.Error(), "unauthorized") || !strings.Contains(err.Error(), "unknown token") {
		t.Fatalf("exit %d: %v", code, err)
	}
}
