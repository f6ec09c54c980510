package wsgate_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/internal/wstest"
)

// The raw client below speaks WebSocket by hand, so that tests can send what no library would
// (reserved bits, unmasked frames, bad close codes) and see exactly what the server answers on the
// wire, frame by frame, down to the end of the TCP connection.

// ioWait bounds every read and write of the raw client.
const ioWait = 5 * time.Second

// The nonce of RFC 6455 §1.3 and the Sec-WebSocket-Accept it must produce.
const (
	testKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	testAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// Opcodes (RFC 6455 §5.2) and reserved header bits, as they sit in the first header byte.
const (
	opCont   = wstest.OpCont
	opText   = wstest.OpText
	opBinary = wstest.OpBinary
	opClose  = wstest.OpClose
	opPing   = wstest.OpPing
	opPong   = wstest.OpPong

	rsv1 = wstest.RSV1
	rsv2 = wstest.RSV2
	rsv3 = wstest.RSV3
)

// frame is one WebSocket frame, valid or not. Client frames are masked unless unmasked is set.
type frame struct {
	fin      bool
	rsv      byte // any of rsv1, rsv2, rsv3
	opcode   byte
	unmasked bool
	payload  []byte
}

func text(s string) frame { return frame{fin: true, opcode: opText, payload: []byte(s)} }

func closeFrame(code int, reason string) frame {
	return frame{fin: true, opcode: opClose, payload: append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)}
}

// maskKey is the key of every frame the raw client masks.
var maskKey = wstest.MaskKey

// bytes encodes f with the shortest length encoding, masking the payload unless f.unmasked.
func (f frame) bytes() []byte {
	return wstest.Frame{Fin: f.fin, RSV: f.rsv, Opcode: f.opcode, Unmasked: f.unmasked, Payload: f.payload}.Bytes()
}

func (f frame) String() string {
	names := map[byte]string{opCont: "cont", opText: "text", opBinary: "binary", opClose: "close", opPing: "ping", opPong: "pong"}
	name, ok := names[f.opcode]
	if !ok {
		name = fmt.Sprintf("op%#x", f.opcode)
	}
	p := string(f.payload)
	if len(p) > 40 {
		p = p[:40] + "…"
	}
	return fmt.Sprintf("%s(fin=%t rsv=%#x %q)", name, f.fin, f.rsv, p)
}

// deflate compresses p as one permessage-deflate message (RFC 7692 §7.2.1: the trailing
// 00 00 ff ff of the sync flush is removed).
func deflate(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// upgradeRequest returns a valid opening handshake for host (RFC 6455 §4.1), with its headers
// changed by edit when edit is not nil.
func upgradeRequest(method, host string, edit func(http.Header)) []byte {
	h := http.Header{}
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Key", testKey)
	h.Set("Sec-WebSocket-Version", "13")
	if edit != nil {
		edit(h)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s /ws HTTP/1.1\r\nHost: %s\r\n", method, host)
	_ = h.Write(&b)
	b.WriteString("\r\n")
	return b.Bytes()
}

// addr is the server's host:port on 127.0.0.1.
func (ts *testServer) addr() string { return ts.http.Listener.Addr().String() }

// rawConn is the client side of one TCP connection to the server.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

// handshake connects to ts, writes req and then tail in a single write, and reads the response.
// The connection is closed when the test ends.
func handshake(t testing.TB, ts *testServer, req, tail []byte) (*rawConn, *http.Response) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", ts.addr(), ioWait)
	if err != nil {
		t.Fatal(err)
	}
	return handshakeOn(t, nc, req, tail)
}

// handshakeOn is handshake on a connection of the caller's; it is closed when the test ends.
func handshakeOn(t testing.TB, nc net.Conn, req, tail []byte) (*rawConn, *http.Response) {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	rc := &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
	rc.send(append(append([]byte(nil), req...), tail...))
	_ = nc.SetReadDeadline(time.Now().Add(ioWait))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatalf("reading the handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Read a refusal's body now, for callers that look at it: the connection may end.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return rc, resp
}

// dialRaw completes a WebSocket handshake with ts, its request changed by edit (nil for none).
func dialRaw(t testing.TB, ts *testServer, edit func(http.Header)) (*rawConn, *http.Response) {
	t.Helper()
	rc, resp := handshake(t, ts, upgradeRequest(http.MethodGet, ts.addr(), edit), nil)
	rc.mustUpgrade(resp)
	return rc, resp
}

// mustUpgrade fails the test unless resp is a correct 101 answer to testKey.
func (rc *rawConn) mustUpgrade(resp *http.Response) {
	rc.t.Helper()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		rc.t.Fatalf("handshake answered %s, want 101", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != testAccept {
		rc.t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, testAccept)
	}
}

// send writes p, failing the test if it cannot.
func (rc *rawConn) send(p []byte) {
	rc.t.Helper()
	if err := rc.trySend(p); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// trySend writes p; it fails when the server has already closed the connection.
func (rc *rawConn) trySend(p []byte) error {
	_ = rc.nc.SetWriteDeadline(time.Now().Add(ioWait))
	_, err := rc.nc.Write(p)
	return err
}

// write sends frames in a single TCP write.
func (rc *rawConn) write(frames ...frame) {
	rc.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, f.bytes()...)
	}
	rc.send(b)
}

// errServerClosed says the server ended the TCP connection, with a FIN or a reset.
var errServerClosed = wstest.ErrServerClosed

// readFrame reads the next server frame. It returns errServerClosed at the end of the connection
// and an error for anything a server may not send: a masked frame, a truncated one.
func (rc *rawConn) readFrame() (frame, error) {
	_ = rc.nc.SetReadDeadline(time.Now().Add(ioWait))
	f, err := wstest.ReadServerFrame(rc.br)
	return frame{fin: f.Fin, rsv: f.RSV, opcode: f.Opcode, payload: f.Payload}, err
}

// checkServerFrame returns why f is not a frame the server may send here, or nil.
func checkServerFrame(f frame, compressed bool) error {
	switch {
	case f.rsv&^rsv1 != 0 || f.rsv != 0 && (!compressed || f.opcode > opBinary || f.opcode == opCont):
		return fmt.Errorf("reserved bits set in %v", f)
	case f.opcode >= opClose && f.opcode <= opPong:
		if !f.fin || len(f.payload) > 125 {
			return fmt.Errorf("fragmented or oversized control frame %v", f)
		}
	case f.opcode > opBinary:
		return fmt.Errorf("unknown opcode in %v", f)
	}
	return nil
}

// nextFrame reads one frame and fails the test unless it has the given opcode.
func (rc *rawConn) nextFrame(opcode byte) frame {
	rc.t.Helper()
	f, err := rc.readFrame()
	if err != nil {
		rc.t.Fatalf("want a %v frame: %v", frame{opcode: opcode}, err)
	}
	if err := checkServerFrame(f, false); err != nil {
		rc.t.Fatal(err)
	}
	if f.opcode != opcode {
		rc.t.Fatalf("got %v, want a %v frame", f, frame{opcode: opcode})
	}
	return f
}

// expectEcho reads the echo of msg.
func (rc *rawConn) expectEcho(msg string) {
	rc.t.Helper()
	if f := rc.nextFrame(opText); !f.fin || string(f.payload) != msg+" done" {
		rc.t.Fatalf("got %v, want text %q", f, msg+" done")
	}
}

// closeResult is what a server's close frame said.
type closeResult struct {
	code   int // 1005 for a close frame without a code
	reason string
}

// drain reads every frame until the server ends the TCP connection, failing the test on a
// malformed frame or when the connection is still open after ioWait.
func (rc *rawConn) drain() []frame {
	rc.t.Helper()
	var seen []frame
	for {
		f, err := rc.readFrame()
		switch {
		case errors.Is(err, errServerClosed):
			return seen
		case errors.Is(err, os.ErrDeadlineExceeded):
			rc.t.Fatalf("the server neither closed nor ended the connection within %v; frames received: %v", ioWait, seen)
		case err != nil:
			rc.t.Fatalf("after frames %v: %v", seen, err)
		}
		if err := checkServerFrame(f, false); err != nil {
			rc.t.Error(err)
		}
		if f.opcode == opText && string(f.payload) == probe+" done" {
			rc.t.Fatalf("the server took the bad input as valid: it answered the message sent after it; frames: %v", append(seen, f))
		}
		seen = append(seen, f)
	}
}

// probe is a message sent after bad input: a server that answers it has accepted the bad input,
// which drain reports at once instead of waiting for a close that will not come.
const probe = "probe after bad input"

// closeFrames returns the close frames among frames the server sent, failing the test for
// anything sent after the first one (RFC 6455 §5.5.1).
func (rc *rawConn) closeFrames(frames []frame) []frame {
	rc.t.Helper()
	for i, f := range frames {
		if f.opcode == opClose {
			if i != len(frames)-1 {
				rc.t.Errorf("the server sent %v after its close frame (RFC 6455 §5.5.1)", frames[i+1:])
			}
			return frames[i:]
		}
	}
	return nil
}

// expectClose reads every frame until the server ends the TCP connection and returns its close
// frame. It fails the test unless exactly one close frame came, nothing came after it, and the
// connection ended within ioWait.
func (rc *rawConn) expectClose() closeResult {
	rc.t.Helper()
	seen := rc.drain()
	closes := rc.closeFrames(seen)
	if len(closes) == 0 {
		rc.t.Fatalf("the server ended the connection without a close frame; frames: %v", seen)
	}
	return parseClose(rc.t, closes[0].payload)
}

// parseClose decodes a close frame's body (RFC 6455 §5.5.1), failing on a malformed one.
func parseClose(t testing.TB, p []byte) closeResult {
	t.Helper()
	switch {
	case len(p) == 0:
		return closeResult{code: int(wsgate.CloseNoStatus)}
	case len(p) == 1:
		t.Errorf("the server's close frame has a 1-byte body %x", p)
		return closeResult{}
	}
	r := closeResult{code: int(binary.BigEndian.Uint16(p)), reason: string(p[2:])}
	if !utf8.ValidString(r.reason) {
		t.Errorf("the server's close reason %q is not valid UTF-8", r.reason)
	}
	return r
}

// wantClose fails the test unless the server closes with code (and closes the TCP connection).
func (rc *rawConn) wantClose(code int) {
	rc.t.Helper()
	got := rc.expectClose()
	if got.code != code {
		rc.t.Errorf("the server closed with %d %q, want %d", got.code, got.reason, code)
	}
	if strings.Contains(got.reason, "gws") { // the transport is not part of what peers see
		rc.t.Errorf("close reason %q names the transport", got.reason)
	}
}

// closeClean does the client side of a normal close handshake.
func (rc *rawConn) closeClean() {
	rc.t.Helper()
	rc.write(closeFrame(1000, "bye"))
	rc.wantClose(1000)
}

// assertServes checks that ts still upgrades and echoes for a new client.
func assertServes(t testing.TB, ts *testServer) {
	t.Helper()
	rc, _ := dialRaw(t, ts, nil)
	rc.write(text("still there?"))
	rc.expectEcho("still there?")
	rc.closeClean()
}

// echoOrClose is the handler of the protocol tests: it echoes like echoDone, and closes the
// connection with 4000 when a client sends "close-me".
var echoOrClose = wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
	if string(m.Data) == "close-me" {
		_ = c.Close(4000, "as asked")
		return
	}
	echoDone(c, m)
})

// onlyConn waits for ts to hold exactly one connection and returns it.
func onlyConn(t testing.TB, ts *testServer) *wsgate.Conn {
	t.Helper()
	waitFor(t, ioWait, "the connection to register", func() bool { return ts.Stats().Connections == 1 })
	var c *wsgate.Conn
	ts.Range(func(cc *wsgate.Conn) bool { c = cc; return false })
	return c
}
