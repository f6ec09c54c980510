package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/protocol"
)

// What a private channel's subscription lets in (publish, history, presence) lasts as long as
// the subscription: the backend API's unsubscribe of the user takes it back.
func TestAPIUnsubscribeEndsPrivateChannelAccess(t *testing.T) {
	s := start(t, namespacesConfig(), nil)
	alice := dialV1(t, s.url, nil)
	alice.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, "")})
	alice.ok(map[string]any{"op": "subscribe", "channel": "private:a", "token": channelToken(t, "alice", "private:a")})
	if n, err := s.gw.Node().Unsubscribe(context.Background(), "alice", "private:a"); err != nil || n != 1 {
		t.Fatalf("API unsubscribe: %d %v", n, err)
	}
	alice.fails(map[string]any{"op": "history", "channel": "private:a"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "publish", "channel": "private:a", "data": "still here"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "presence", "channel": "private:a"}, protocol.CodeForbidden)

	// An API subscribe lets in again, for as long as it lasts.
	if n, err := s.gw.Node().Subscribe(context.Background(), "alice", "private:a"); err != nil || n != 1 {
		t.Fatalf("API subscribe: %d %v", n, err)
	}
	alice.ok(map[string]any{"op": "history", "channel": "private:a"})
	alice.ok(map[string]any{"op": "unsubscribe", "channel": "private:a"})
	alice.fails(map[string]any{"op": "history", "channel": "private:a"}, protocol.CodeForbidden)
}

// The client's own unsubscribe from a private channel ends its access too: coming back needs a
// channel token again (a fresh one, once the first has expired).
func TestClientUnsubscribeEndsPrivateChannelAccess(t *testing.T) {
	s := start(t, namespacesConfig(), nil)
	alice := dialV1(t, s.url, nil)
	alice.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, "")})
	alice.ok(map[string]any{"op": "subscribe", "channel": "private:a", "token": channelToken(t, "alice", "private:a")})
	alice.ok(map[string]any{"op": "publish", "channel": "private:a", "data": 1})
	alice.ok(map[string]any{"op": "presence", "channel": "private:a"})
	alice.ok(map[string]any{"op": "unsubscribe", "channel": "private:a"})
	alice.fails(map[string]any{"op": "history", "channel": "private:a"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "publish", "channel": "private:a", "data": 2}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "presence", "channel": "private:a"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "subscribe", "channel": "private:a"}, protocol.CodeForbidden)
}

// A server-side subscribe that fails (here: the connection is at its subscription limit) lets
// nothing in: access is the subscription's, not the attempt's.
func TestFailedAPISubscribeLetsNothingIn(t *testing.T) {
	s := start(t, namespacesConfig(), nil)
	alice := dialV1(t, s.url, nil)
	alice.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, "")})
	for i := 0; ; i++ {
		r := alice.do(map[string]any{"op": "subscribe", "channel": fmt.Sprintf("open:%d", i)})
		if r.Error != nil {
			if r.Error.Code != protocol.CodeLimitExceeded {
				t.Fatalf("subscribe %d: %v", i, r.Error)
			}
			break
		}
	}
	if n, err := s.gw.Node().Subscribe(context.Background(), "alice", "private:b"); err == nil || n != 0 {
		t.Fatalf("API subscribe over the limit: %d %v, want an error", n, err)
	}
	alice.ok(map[string]any{"op": "unsubscribe", "channel": "open:0"}) // room again: still not in
	alice.fails(map[string]any{"op": "history", "channel": "private:b"}, protocol.CodeForbidden)
	alice.fails(map[string]any{"op": "publish", "channel": "private:b", "data": 1}, protocol.CodeForbidden)
}

// Access is not a bounded set of grants that is wiped when full: a connection that went through
// many private channels (subscribe, unsubscribe: a DM app) keeps the one it is subscribed to.
func TestManyPrivateChannelsKeepTheCurrentSubscription(t *testing.T) {
	s := start(t, namespacesConfig(), nil)
	alice := dialV1(t, s.url, nil)
	alice.ok(map[string]any{"op": "connect", "token": token(t, "alice", time.Hour, "")})
	alice.ok(map[string]any{"op": "subscribe", "channel": "private:home", "token": channelToken(t, "alice", "private:home")})
	for i := range 4 * 128 {
		ch := fmt.Sprintf("private:dm%d", i)
		alice.ok(map[string]any{"op": "subscribe", "channel": ch, "token": channelToken(t, "alice", ch)})
		alice.ok(map[string]any{"op": "unsubscribe", "channel": ch})
	}
	alice.ok(map[string]any{"op": "history", "channel": "private:home"})
	alice.ok(map[string]any{"op": "publish", "channel": "private:home", "data": 1})
}
