package wsgate_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wsgate/wsgate"
)

// A handshake the server refuses gets the HTTP status that says why (RFC 6455 §4.2.1, §4.2.2).

// handshakeCase is an opening handshake and the status the server must answer.
type handshakeCase struct {
	name   string
	method string
	edit   func(h http.Header)
	want   int
}

// runHandshakeCases plays each case against ts as a subtest that checks the status.
func runHandshakeCases(t *testing.T, ts *testServer, cases []handshakeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			_, resp := handshake(t, ts, upgradeRequest(method, ts.addr(), tc.edit), nil)
			if resp.StatusCode != tc.want {
				t.Errorf("answered %s, want %d", resp.Status, tc.want)
			}
		})
	}
}

func set(key, value string) func(http.Header) { return func(h http.Header) { h.Set(key, value) } }

func TestHandshakeRejections(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	t.Run("plain GET from an HTTP client", func(t *testing.T) {
		resp, err := http.Get("http://" + ts.addr() + "/ws")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("answered %s, want 400", resp.Status)
		}
	})
	t.Run("POST from an HTTP client", func(t *testing.T) {
		resp, err := http.Post("http://"+ts.addr()+"/ws", "text/plain", strings.NewReader("hi"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodGet {
			t.Errorf("answered %s with Allow %q, want 405 with Allow GET", resp.Status, resp.Header.Get("Allow"))
		}
	})
	t.Run("version 8", func(t *testing.T) {
		_, resp := handshake(t, ts, upgradeRequest(http.MethodGet, ts.addr(), set("Sec-WebSocket-Version", "8")), nil)
		if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("answered %s with Sec-WebSocket-Version %q, want 426 with 13",
				resp.Status, resp.Header.Get("Sec-WebSocket-Version"))
		}
	})
	runHandshakeCases(t, ts, []handshakeCase{
		{"upgrade handshake by POST", http.MethodPost, nil, http.StatusMethodNotAllowed},
		{"no Upgrade header", "", func(h http.Header) { h.Del("Upgrade") }, http.StatusBadRequest},
		{"no Connection: Upgrade", "", set("Connection", "keep-alive"), http.StatusBadRequest},
		{"no Sec-WebSocket-Key", "", func(h http.Header) { h.Del("Sec-WebSocket-Key") }, http.StatusBadRequest},
		{"Sec-WebSocket-Key not base64", "", set("Sec-WebSocket-Key", "not base64!"), http.StatusBadRequest},
		{"Sec-WebSocket-Key of 8 bytes", "", set("Sec-WebSocket-Key", "AAAAAAAAAAA="), http.StatusBadRequest},
		{"foreign Origin", "", set("Origin", "http://evil.example"), http.StatusForbidden},
		{"same Origin", "", set("Origin", "http://"+ts.addr()), http.StatusSwitchingProtocols},
		{"no Origin (not a browser)", "", nil, http.StatusSwitchingProtocols},
	})
	assertServes(t, ts)
}

func TestAllowedOrigins(t *testing.T) {
	wildcard := startServer(t, echoOrClose, &wsgate.Config{AllowedOrigins: []string{"*.example.com"}})
	runHandshakeCases(t, wildcard, []handshakeCase{
		{"subdomain allowed", "", set("Origin", "https://a.example.com"), http.StatusSwitchingProtocols},
		{"other domain refused", "", set("Origin", "https://example.org"), http.StatusForbidden},
		{"bare domain refused", "", set("Origin", "https://example.com"), http.StatusForbidden},
	})
	anyOrigin := startServer(t, echoOrClose, &wsgate.Config{AllowedOrigins: []string{"*"}})
	runHandshakeCases(t, anyOrigin, []handshakeCase{
		{"any origin allowed", "", set("Origin", "http://evil.example"), http.StatusSwitchingProtocols},
		{"another allowed", "", set("Origin", "https://example.org"), http.StatusSwitchingProtocols},
	})
}

func TestMaxConnections(t *testing.T) {
	ts := startServer(t, echoOrClose, &wsgate.Config{MaxConnections: 1})
	first, _ := dialRaw(t, ts, nil)
	req := upgradeRequest(http.MethodGet, ts.addr(), nil)
	if _, resp := handshake(t, ts, req, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second connection answered %s, want 503", resp.Status)
	}
	first.closeClean()
	waitFor(t, ioWait, "a second connection to be accepted once the first has closed", func() bool {
		rc, resp := handshake(t, ts, req, nil)
		rc.nc.Close()
		return resp.StatusCode == http.StatusSwitchingProtocols
	})
}

func TestSubprotocolNegotiation(t *testing.T) {
	cases := []struct {
		name string
		edit func(http.Header)
		want string
	}{
		{"offered in a list", set("Sec-WebSocket-Protocol", "foo, wsgate.v1"), "wsgate.v1"},
		// RFC 6455 §11.3.4: the header may appear several times; the values combine as a list.
		{"offered in two header lines", func(h http.Header) {
			h["Sec-Websocket-Protocol"] = []string{"foo", "wsgate.v1"}
		}, "wsgate.v1"},
		{"none offered", nil, ""},
		{"only unknown ones offered", set("Sec-WebSocket-Protocol", "foo"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, echoOrClose, &wsgate.Config{Subprotocols: []string{"wsgate.v1"}})
			rc, resp := dialRaw(t, ts, tc.edit)
			var want []string // no header at all when nothing was negotiated
			if tc.want != "" {
				want = []string{tc.want}
			}
			if got := resp.Header.Values("Sec-WebSocket-Protocol"); !slices.Equal(got, want) {
				t.Errorf("Sec-WebSocket-Protocol lines %q, want %q", got, want)
			}
			if got := onlyConn(t, ts).Subprotocol(); got != tc.want {
				t.Errorf("Conn.Subprotocol() = %q, want %q", got, tc.want)
			}
			rc.closeClean()
		})
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	cases := []struct {
		cfg   wsgate.Config
		field string
	}{
		{wsgate.Config{ReadLimit: -1}, "ReadLimit"},
		{wsgate.Config{MaxHandshakeRate: -1}, "MaxHandshakeRate"},
		{wsgate.Config{SlowConsumer: wsgate.SlowConsumerPolicy(7)}, "SlowConsumer"},
		{wsgate.Config{AllowedOrigins: []string{"["}}, "AllowedOrigins"},
		{wsgate.Config{Subprotocols: []string{"two words"}}, "Subprotocols"},
		{wsgate.Config{Subprotocols: manySubprotocols(1001)}, "Subprotocols"},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			srv, err := wsgate.NewServer(nil, &tc.cfg)
			if err == nil || srv != nil {
				t.Fatalf("NewServer = %v, %v; want nil and an error", srv, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the field %s", err, tc.field)
			}
		})
	}
}

// manySubprotocols is n distinct valid subprotocol names.
func manySubprotocols(n int) []string {
	p := make([]string, n)
	for i := range p {
		p[i] = fmt.Sprintf("v%d", i)
	}
	return p
}

// TestHandshakeDetails holds the server to the letter of RFC 6455 §4.2.1 and §11.3 where a lax
// check upgraded what it should not, or let the transport answer in its own words.
func TestHandshakeDetails(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	cases := []struct {
		name string
		req  []byte
		want int
	}{
		{"two Sec-WebSocket-Key lines", upgradeRequest(http.MethodGet, ts.addr(), func(h http.Header) {
			h.Add("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")
		}), http.StatusBadRequest},
		{"a body by Content-Length", append(upgradeRequest(http.MethodGet, ts.addr(), set("Content-Length", "5")), "hello"...),
			http.StatusBadRequest},
		{"a chunked body", append(upgradeRequest(http.MethodGet, ts.addr(), set("Transfer-Encoding", "chunked")), "5\r\nhello\r\n0\r\n\r\n"...),
			http.StatusBadRequest},
		// RFC 9110 §7.8: Upgrade is a list; the client asks for websocket among others.
		{"Upgrade: websocket, foo", upgradeRequest(http.MethodGet, ts.addr(), set("Upgrade", "websocket, foo")),
			http.StatusSwitchingProtocols},
		{"Upgrade: foo, websocket", upgradeRequest(http.MethodGet, ts.addr(), set("Upgrade", "foo, websocket")),
			http.StatusSwitchingProtocols},
		{"Connection over two lines", upgradeRequest(http.MethodGet, ts.addr(), func(h http.Header) {
			h["Connection"] = []string{"keep-alive", "Upgrade"}
		}), http.StatusSwitchingProtocols},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, resp, body := handshakeBody(t, ts, tc.req)
			if resp.StatusCode != tc.want {
				t.Fatalf("answered %s %q, want %d", resp.Status, body, tc.want)
			}
			if strings.Contains(strings.ToLower(body), "gws") {
				t.Errorf("the reply names the transport: %q", body)
			}
			if tc.want == http.StatusSwitchingProtocols {
				rc.mustUpgrade(resp)
				rc.write(text("hi"))
				if f, err := rc.readFrame(); err != nil || string(f.payload) != "hi done" {
					t.Fatalf("after the upgrade: %v %v, want the reply hi done", f, err)
				}
			}
		})
	}
}

// TestRefusalsEchoNothing sends a refused handshake full of a marker and checks the reply is
// short and quotes none of it.
func TestRefusalsEchoNothing(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	marker := strings.Repeat("MARKER", 1000)
	for _, edit := range []func(http.Header){
		set("Sec-WebSocket-Key", marker), set("Sec-WebSocket-Version", marker), set("Origin", "http://"+marker),
		set("Upgrade", marker), set("Connection", marker),
	} {
		_, resp, body := handshakeBody(t, ts, upgradeRequest(http.MethodGet, ts.addr(), edit))
		if resp.StatusCode < 400 || len(body) > 200 || strings.Contains(body, "MARKER") {
			t.Errorf("answered %s with %d bytes %.100q; want a refusal of under 200 bytes quoting nothing",
				resp.Status, len(body), body)
		}
	}
}

// handshakeBody is handshake that also returns the body of a refusal.
func handshakeBody(t *testing.T, ts *testServer, req []byte) (*rawConn, *http.Response, string) {
	t.Helper()
	rc, resp := handshake(t, ts, req, nil)
	body, _ := io.ReadAll(resp.Body)
	return rc, resp, string(body)
}

// TestRefusalClosesTheConnection: a refused handshake does not keep its socket as an HTTP
// keep-alive connection.
func TestRefusalClosesTheConnection(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	rc, resp := handshake(t, ts, upgradeRequest(http.MethodGet, ts.addr(), set("Origin", "http://evil.example")), nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("answered %s, want 403", resp.Status)
	}
	if _, err := rc.readFrame(); err != errServerClosed {
		t.Fatalf("after the refusal: %v, want the server to close the connection", err)
	}
}
