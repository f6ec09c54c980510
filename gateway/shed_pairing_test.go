package gateway_test

import (
	"net/http"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/gateway"
)

// TestHandshakeRatePairedWithPerAddressBucket: docs/BOUNDS.md says a flood from a few addresses
// takes the node-wide MaxHandshakeRate tokens of the others, "so pair it with the per-address
// bucket (limits.handshakes_per_second)". Paired, a flooding address is refused by its own bucket
// (429), so it should not be able to spend the node's tokens: another address must still get in.
// The node-wide bucket is taken in ServeHTTP before Admit, where the per-address bucket is, so
// every refused handshake of the flooder has already spent a node token and the other address
// is shed with 503.
func TestHandshakeRatePairedWithPerAddressBucket(t *testing.T) {
	const rate = 5
	s := start(t, &gateway.Config{Limits: gateway.Limits{HandshakesPerSecond: 1, HandshakeBurst: 1}},
		&wsgate.Config{MaxHandshakeRate: rate, TrustedProxies: []string{"127.0.0.1"}})
	from := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	// The flooder: one handshake of its own bucket, the rest refused 429 by it.
	tooMany := 0
	for range 2 * rate {
		ws, resp, err := websocket.DefaultDialer.Dial(s.url, from("203.0.113.7"))
		if err == nil {
			ws.Close()
			continue
		}
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			tooMany++
		}
	}
	if tooMany == 0 {
		t.Fatal("the per-address bucket refused none of the flooder's handshakes")
	}
	// Another address, whose bucket is full, within the same second.
	ws, resp, err := websocket.DefaultDialer.Dial(s.url, from("198.51.100.9"))
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("another address after a flooder refused %d times by its own bucket: %v (status %d), want upgraded: "+
			"handshakes refused by the per-address bucket spent node-wide MaxHandshakeRate tokens", tooMany, err, status)
	}
	ws.Close()
}
