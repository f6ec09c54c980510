package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The HTTP side of wsgate serve is bounded in sockets: idle keep-alive connections (a GET
// /healthz, then silence) time out soon and give their place to new clients when the cap is
// reached, and one address cannot hold more than its share.

// keepAlive opens a connection from the local address ip, asks GET /healthz on it and leaves it
// open, idle; it returns nil if the server closed it before answering.
func keepAlive(t *testing.T, addr, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		return nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nc
}

// stillOpen counts the connections the server has not closed: a read finds no end of stream.
func stillOpen(conns []net.Conn) int {
	n := 0
	for _, nc := range conns {
		if nc == nil {
			continue
		}
		nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		var b [1]byte
		if _, err := nc.Read(b[:]); errors.Is(err, os.ErrDeadlineExceeded) {
			n++
		}
	}
	return n
}

// waitOpen polls stillOpen until ok accepts its count, for up to 5 s (closes take time to
// arrive), and returns the last count.
func waitOpen(conns []net.Conn, ok func(int) bool) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := stillOpen(conns)
		if ok(n) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleKeepAlivesGiveWay fills the HTTP connection cap with idle keep-alive connections and
// checks that more of them, and then a WebSocket client, still get in: the oldest idle ones are
// closed to make room, so the server never holds more than the cap.
func TestIdleKeepAlivesGiveWay(t *testing.T) {
	r := startRun(t, "-max-http-connections", "20", "-http-idle-timeout", "1m")
	var conns []net.Conn
	for range 60 {
		conns = append(conns, keepAlive(t, r.addr, "127.0.0.1"))
	}
	ws := dialWS(t, r.addr, "")
	echo(t, ws, websocket.TextMessage, "through")
	if n := waitOpen(conns, func(n int) bool { return n <= 20 }); n > 20 {
		t.Errorf("%d idle keep-alive connections still open, want at most -max-http-connections 20", n)
	}
	if resp, body := get(t, "http://"+r.addr+"/healthz"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("GET /healthz after the flood: %d %q", resp.StatusCode, body)
	}
}

// TestHTTPIdleTimeout checks that an idle keep-alive connection is closed after -http-idle-timeout.
func TestHTTPIdleTimeout(t *testing.T) {
	r := startRun(t, "-http-idle-timeout", "100ms")
	nc := keepAlive(t, r.addr, "127.0.0.1")
	nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection read %v, want EOF", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("closed after %v, want about 100ms", took)
	}
}

// TestHTTPConnectionsPerIP checks that one address cannot take more than
// -max-http-connections-per-ip sockets, while another still connects.
func TestHTTPConnectionsPerIP(t *testing.T) {
	r := startRun(t, "-max-http-connections-per-ip", "5", "-max-http-connections", "100", "-http-idle-timeout", "1m",
		"-http-read-header-timeout", "1m") // the silent connections stay until the test ends
	var conns []net.Conn
	for range 12 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		conns = append(conns, nc)
	}
	if n := waitOpen(conns, func(n int) bool { return n == 5 }); n != 5 {
		t.Errorf("%d connections from one address still open, want 5", n)
	}
	if nc := keepAlive(t, r.addr, "127.0.0.4"); nc == nil {
		t.Error("another address was refused")
	}
	ws := dialWS(t, r.addr, "")
	echo(t, ws, websocket.TextMessage, "through")
	waitLog(t, r, "http connections refused")
}

// waitLog waits for a log record with message msg.
func waitLog(t *testing.T, r *running, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rec := r.logs.find(msg, nil); rec != nil {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log; logs:\n%s", msg, r.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebSocketsPerIP checks -max-connections-per-ip from outside: one address cannot take the
// whole -max-connections, another still gets in.
func TestWebSocketsPerIP(t *testing.T) {
	r := startRun(t, "-max-connections", "4", "-max-connections-per-ip", "2")
	from := func(ip string) (*websocket.Conn, *http.Response, error) {
		d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
			return nd.Dial(network, addr)
		}}
		ws, resp, err := d.Dial("ws://"+r.addr+"/ws", nil)
		if err == nil {
			t.Cleanup(func() { ws.Close() })
		}
		return ws, resp, err
	}
	for range 2 {
		if _, _, err := from("127.0.0.5"); err != nil {
			t.Fatal(err)
		}
	}
	if _, resp, err := from("127.0.0.5"); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third WebSocket from one address: %v; want 429 with Retry-After", err)
	}
	ws, _, err := from("127.0.0.6")
	if err != nil {
		t.Fatalf("another address: %v", err)
	}
	echo(t, ws, websocket.TextMessage, "through")
}
