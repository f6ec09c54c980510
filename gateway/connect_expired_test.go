package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/protocol"
)

// A connect token within the verifier's leeway past its exp is refused as an expired one is
// (110, close 4501) before the connection is counted as its user's: it cannot stay to connect
// again as someone else while still registered under the first user.
func TestConnectWithinLeewayClosesBeforeRegistering(t *testing.T) {
	cfg := namespacesConfig()
	cfg.Limits.ConnectionsPerUser = 1
	s := start(t, cfg, nil)
	c := dialV1(t, s.url, nil)
	c.fails(map[string]any{"op": "connect", "token": token(t, "mallory2", -2*time.Second, "")}, protocol.CodeTokenExpired)
	if code := closedWith(t, c.ws); code != protocol.CloseTokenExpired {
		t.Fatalf("closed with %d, want %d", code, protocol.CloseTokenExpired)
	}
	// mallory2's one connection is free: the refused one never took it.
	m := dialV1(t, s.url, nil)
	m.ok(map[string]any{"op": "connect", "token": token(t, "mallory2", time.Hour, "")})
	if n, err := s.gw.Node().Disconnect(context.Background(), "mallory2", 0, "banned"); err != nil || n != 1 {
		t.Fatalf("API disconnect of mallory2: %d %v, want its one connection", n, err)
	}
}

// A backend's connect answer with expire_at in the past is refused as an expired token is.
func TestConnectThroughBackendExpiredIdentity(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"result":{"user":"alice","expire_at":1000000000}}`)
	}))
	t.Cleanup(be.Close)
	cfg := &gateway.Config{Auth: gateway.Auth{ConnectURL: be.URL}, Limits: gateway.Limits{ConnectionsPerUser: 1}}
	s := start(t, cfg, nil)
	for range 2 { // the second would be over the cap, had the first been counted
		c := dialV1(t, s.url, nil)
		c.fails(map[string]any{"op": "connect"}, protocol.CodeTokenExpired)
		if code := closedWith(t, c.ws); code != protocol.CloseTokenExpired {
			t.Fatalf("closed with %d, want %d", code, protocol.CloseTokenExpired)
		}
	}
}
