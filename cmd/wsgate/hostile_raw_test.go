package main

// The clients of the hostile tests: a wsgate.v1 pipeliner, a subscriber that recovers as the JS
// client does, and a WebSocket and HTTP client written by hand, which sends what no library would
// (partial frames, endless fragments, doubled headers) and reads what the server answers, frame by
// frame, down to the end of the TCP connection.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/protocol"
)

// rawWait bounds every read and write of the raw client.
const rawWait = 5 * time.Second

// Opcodes of RFC 6455 §5.2, from the shared raw-frame codec.
const (
	opCont   = wstest.OpCont
	opText   = wstest.OpText
	opBinary = wstest.OpBinary
	opClose  = wstest.OpClose
	opPing   = wstest.OpPing
	opPong   = wstest.OpPong
)

// wsFrame encodes one masked client frame.
func wsFrame(fin bool, opcode byte, payload []byte) []byte {
	return wstest.Frame{Fin: fin, Opcode: opcode, Payload: payload}.Bytes()
}

// upgradeHead is an opening handshake for target on host, with extra header lines (each ending
// in \r\n), up to and including the blank line.
func upgradeHead(target, host, extra string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// rawStatus writes req on a new connection to addr while reading the answer, so that a server
// that answers before it has read all of a huge request is heard; it returns the status code and
// up to 64 KiB of the body.
func rawStatus(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, rawWait)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(rawWait))
	written := make(chan struct{})
	go func() { // owner: rawStatus, which closes the connection under it and waits for it
		defer close(written)
		io.WriteString(nc, req) // the server may answer and stop reading: the error is expected
	}()
	defer func() { nc.Close(); <-written }()
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("reading the answer to %.60q…: %v", req, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// rawWS is the client side of an upgraded connection.
type rawWS struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// rawDial upgrades a new connection to addr (raw mode: no subprotocol); it is closed when the
// test ends.
func rawDial(t *testing.T, addr string) *rawWS {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, rawWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawWS{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.send([]byte(upgradeHead("/ws", addr, "")))
	nc.SetReadDeadline(time.Now().Add(rawWait))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return c
}

// send writes p, failing the test if it cannot.
func (c *rawWS) send(p []byte) {
	c.t.Helper()
	if err := c.trySend(p); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// trySend writes p; it fails once the server has dropped the connection.
func (c *rawWS) trySend(p []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(rawWait))
	_, err := c.nc.Write(p)
	return err
}

// errGone says the server ended the TCP connection, with a FIN or a reset.
var errGone = wstest.ErrServerClosed

// readFrame reads the next server frame by deadline.
func (c *rawWS) readFrame(deadline time.Time) (opcode byte, payload []byte, err error) {
	c.nc.SetReadDeadline(deadline)
	f, err := wstest.ReadServerFrame(c.br)
	return f.Opcode, f.Payload, err
}

// closeFrame reads frames until the server's close frame and returns its code and reason, or 0
// if the connection ended without one; it fails the test when neither happens by deadline.
func (c *rawWS) closeFrame(deadline time.Time) (code int, reason string) {
	c.t.Helper()
	for {
		op, p, err := c.readFrame(deadline)
		switch {
		case errors.Is(err, errGone):
			return 0, ""
		case err != nil:
			c.t.Fatalf("waiting for the server's close: %v", err)
		case op == opClose && len(p) >= 2:
			return int(binary.BigEndian.Uint16(p)), string(p[2:])
		case op == opClose:
			c.t.Fatalf("close frame with a body of %d bytes", len(p))
		}
	}
}

// ended waits until the server ends the TCP connection, discarding what it sends, and reports
// whether it did by deadline.
func (c *rawWS) ended(deadline time.Time) bool {
	c.nc.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, c.br)
	return err == nil || errors.Is(err, syscall.ECONNRESET)
}

// pipeline sends n requests made by req(i) while reading their n replies, and returns the replies'
// results and errors as check sees them.
func pipeline(t *testing.T, ws *websocket.Conn, n int, req func(i int) string, check func(i int, reply map[string]json.RawMessage)) {
	t.Helper()
	sent := make(chan struct{})
	defer func() { <-sent }() // one writer at a time on ws
	// owner: pipeline, which waits for it; ends when all are sent or the connection fails
	go func() {
		defer close(sent)
		for i := 1; i <= n; i++ {
			if ws.WriteMessage(websocket.TextMessage, []byte(req(i))) != nil {
				return
			}
		}
	}()
	ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
	for got := 0; got < n; {
		_, b, err := ws.ReadMessage()
		if err != nil {
			ws.Close() // the writer stops
			t.Fatalf("after %d of %d replies: %v", got, n, err)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			t.Fatalf("not JSON: %.200s", b)
		}
		if m["push"] != nil {
			continue
		}
		got++
		check(got, m)
	}
	ws.SetReadDeadline(time.Time{})
}

// succeeds is a pipeline check that fails the test on an error reply to what it names.
func succeeds(t *testing.T, what string) func(int, map[string]json.RawMessage) {
	return func(i int, m map[string]json.RawMessage) {
		if m["result"] == nil {
			t.Fatalf("%s %d: %s", what, i, m["error"])
		}
	}
}

// burstReader reads one channel's publications as the JS client does: offsets follow each other
// and each publication's data is its offset; on a 1013 close it reconnects and subscribes from
// the last one it has, fetching from history what the subscribe reply leaves for later.
type burstReader struct {
	addr, channel string

	mu      sync.Mutex
	ws      *websocket.Conn // replaced on reconnect; closed by stop
	stopped bool

	epoch             string
	last              uint64 // every publication up to last has come, in order
	id                uint64
	early             []map[string]json.RawMessage // pushes that came while waiting for a reply
	closes, recovered int
}

func (r *burstReader) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.ws != nil {
		r.ws.Close()
	}
}

func (r *burstReader) position() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// readUntil reads until publication n has come; it returns why it could not.
func (r *burstReader) readUntil(n uint64) error {
	for r.position() < n {
		m, err := r.next()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater {
				return fmt.Errorf("after %d of %d publications: %v; want them all, or a close with 1013", r.position(), n, err)
			}
			r.closes++
			if err := r.subscribe(); err != nil {
				return err
			}
			continue
		}
		if err := r.take(m); err != nil {
			return err
		}
	}
	return nil
}

// next is the next message of the connection: the pushes kept while waiting for a reply first.
func (r *burstReader) next() (map[string]json.RawMessage, error) {
	if len(r.early) > 0 {
		m := r.early[0]
		r.early = r.early[1:]
		return m, nil
	}
	r.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, b, err := r.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not JSON: %.200s", b)
	}
	return m, nil
}

// take applies a push: a publication of the channel must be the one after the last.
func (r *burstReader) take(m map[string]json.RawMessage) error {
	if string(m["push"]) != `"pub"` {
		return nil
	}
	pub := protocol.Publication{Data: m["data"]}
	if err := json.Unmarshal(m["offset"], &pub.Offset); err != nil {
		return fmt.Errorf("a push without an offset: %v", err)
	}
	return r.apply(pub)
}

func (r *burstReader) apply(pub protocol.Publication) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pub.Offset != r.last+1 || string(pub.Data) != fmt.Sprint(pub.Offset) {
		return fmt.Errorf("publication at offset %d with data %s after offset %d: want the next one, in order", pub.Offset, pub.Data, r.last)
	}
	r.last = pub.Offset
	return nil
}

// subscribe (re)connects and subscribes, from the last position once it has one, and fetches from
// history what the reply leaves out.
func (r *burstReader) subscribe() error {
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}, HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("ws://"+r.addr+"/ws", nil)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		ws.Close()
		return errors.New("stopped")
	}
	r.ws = ws
	r.mu.Unlock()
	r.early = nil
	since := ""
	if r.epoch != "" {
		since = fmt.Sprintf(`,"since":{"epoch":%q,"offset":%d}`, r.epoch, r.position())
	}
	var res protocol.SubscribeResult
	if err := r.call(`"op":"subscribe"`+since, &res); err != nil {
		return err
	}
	if r.epoch == "" {
		if res.Offset != 0 {
			return fmt.Errorf("a new channel at offset %d", res.Offset)
		}
		r.epoch = res.Epoch
		return nil
	}
	if !res.Recovered {
		return fmt.Errorf("resubscribing from %d: not recovered", r.position())
	}
	for {
		before := r.position()
		for _, pub := range res.Publications {
			if err := r.apply(pub); err != nil {
				return fmt.Errorf("recovering: %w", err)
			}
		}
		r.recovered += int(r.position() - before)
		if !res.More || r.position() >= res.Offset {
			return nil
		}
		var h protocol.HistoryResult
		if err := r.call(fmt.Sprintf(`"op":"history","since":{"epoch":%q,"offset":%d},"limit":1000`, r.epoch, r.position()), &h); err != nil {
			return err
		}
		if !h.Complete {
			return fmt.Errorf("history from %d: incomplete", r.position())
		}
		res.Publications, res.More = h.Publications, h.More
		// Live pushes of offsets past the subscribe's top may be in this page too: keep those
		// up to the top, the pushes bring the rest.
		for i, pub := range res.Publications {
			if pub.Offset > res.Offset {
				res.Publications, res.More = res.Publications[:i], false
				break
			}
		}
	}
}

// call sends a request on the channel and decodes its result into v; pushes that come first are
// kept for next.
func (r *burstReader) call(fields string, v any) error {
	r.id++
	req := fmt.Sprintf(`{"id":%d,"channel":%q,%s}`, r.id, r.channel, fields)
	if err := r.ws.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		return err
	}
	for {
		r.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := r.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("%s: %w", req, err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("not JSON: %.200s", b)
		}
		if m["push"] != nil {
			r.early = append(r.early, m)
			continue
		}
		if m["result"] == nil || string(m["id"]) != fmt.Sprint(r.id) {
			return fmt.Errorf("%s: answered %.300s", req, b)
		}
		return json.Unmarshal(m["result"], v)
	}
}
