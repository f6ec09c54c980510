package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/protocol"
)

// The cost of identity per connection, through real sockets: a dial, a connect and its reply,
// a close (Anonymous: connect without a token on an open server). The differences between the three are a JWT check and a proxied connect (the
// backend on loopback answering at once).
//
//	go test -run XXX -bench Connect -benchtime 2000x ./gateway
func BenchmarkConnect(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"result":{"user":"alice"}}`)
	}))
	defer be.Close()
	tok := token(b, "alice", time.Hour, `{"name":"Alice"}`)
	for _, bc := range []struct {
		name  string
		cfg   *gateway.Config
		token string
	}{
		{"Anonymous", &gateway.Config{}, ""},
		{"JWT", &gateway.Config{Auth: gateway.Auth{JWT: gateway.JWT{HMACSecret: secret}}}, tok},
		{"Proxy", &gateway.Config{Auth: gateway.Auth{ConnectURL: be.URL}}, ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := start(b, bc.cfg, nil)
			d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
			req := map[string]any{"id": 1, "op": "connect"}
			if bc.token != "" {
				req["token"] = bc.token
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				ws, _, err := d.Dial(s.url, nil)
				if err != nil {
					b.Fatal(err)
				}
				_ = ws.WriteJSON(req)
				var r reply
				if err := ws.ReadJSON(&r); err != nil || r.Error != nil {
					b.Fatalf("connect: %v %v", r.Error, err)
				}
				ws.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
		})
	}
}
