package wsgate_test

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wsgate/wsgate"
)

// Bad input gets a clear answer: for every frame a peer may not send, the server answers with the
// close code RFC 6455 §7.4.1 gives for it, sends exactly one close frame, ends the TCP connection,
// and keeps serving everyone else.

// testReadLimit is small so that "too big" costs nothing to send.
const testReadLimit = 1024

// closeCase is bad input and the close code the server must answer it with.
type closeCase struct {
	name   string
	frames []frame // written in one TCP write
	want   int
}

// runCloseCases plays each case on a fresh connection to ts (its handshake changed by edit) and
// then checks that ts still serves a new client.
func runCloseCases(t *testing.T, ts *testServer, edit func(http.Header), cases []closeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc, _ := dialRaw(t, ts, edit)
			rc.write(append(tc.frames[:len(tc.frames):len(tc.frames)], text(probe))...)
			rc.wantClose(tc.want)
			assertServes(t, ts)
		})
	}
}

func TestBadFramesGetPreciseCloseCode(t *testing.T) {
	ts := startServer(t, echoOrClose, &wsgate.Config{ReadLimit: testReadLimit})
	big := bytes.Repeat([]byte("a"), 2*testReadLimit)
	part := bytes.Repeat([]byte("a"), testReadLimit*6/10)
	cases := []closeCase{
		{"message over ReadLimit", []frame{{fin: true, opcode: opBinary, payload: big}}, 1009},
		{"fragments over ReadLimit in total", []frame{{opcode: opText, payload: part}, {fin: true, opcode: opCont, payload: part}}, 1009},

		{"invalid UTF-8 in text", []frame{text("caf\xc3 au lait")}, 1007},
		{"UTF-16 surrogate in text", []frame{text("\xed\xa0\x80")}, 1007},
		{"invalid UTF-8 across fragments", []frame{{opcode: opText, payload: []byte("a\xe2\x82")}, {fin: true, opcode: opCont, payload: []byte("(")}}, 1007},
		{"close reason not UTF-8", []frame{closeFrame(1000, "\xff")}, 1007},

		{"RSV1 without negotiated compression", []frame{{fin: true, rsv: rsv1, opcode: opText, payload: []byte("abc")}}, 1002},
		{"RSV2", []frame{{fin: true, rsv: rsv2, opcode: opText, payload: []byte("abc")}}, 1002},
		{"RSV3", []frame{{fin: true, rsv: rsv3, opcode: opBinary, payload: []byte("abc")}}, 1002},
		{"unknown data opcode 3", []frame{{fin: true, opcode: 0x3}}, 1002},
		{"unknown control opcode 0xB", []frame{{fin: true, opcode: 0xB}}, 1002},
		{"unmasked client frame", []frame{{fin: true, opcode: opText, unmasked: true, payload: []byte("abc")}}, 1002},
		{"fragmented ping", []frame{{opcode: opPing, payload: []byte("abc")}}, 1002},
		{"ping over 125 bytes", []frame{{fin: true, opcode: opPing, payload: bytes.Repeat([]byte("p"), 126)}}, 1002},
		{"close over 125 bytes", []frame{closeFrame(1000, strings.Repeat("r", 124))}, 1002},
		{"continuation with nothing to continue", []frame{{fin: true, opcode: opCont, payload: []byte("abc")}}, 1002},
		{"new message inside a fragmented one", []frame{{opcode: opText, payload: []byte("abc")}, text("def")}, 1002},
		{"close with a 1-byte body", []frame{{fin: true, opcode: opClose, payload: []byte{0x03}}}, 1002},
	}
	// RFC 6455 §7.4: codes below 1000, reserved (1004, 1015) or never sent (1005, 1006), unassigned in
	// 1016-2999, and beyond 4999 are invalid in a close frame.
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535} {
		cases = append(cases, closeCase{fmt.Sprintf("close code %d", code), []frame{closeFrame(code, "")}, 1002})
	}
	runCloseCases(t, ts, nil, cases)
}

// Frames that look unusual but are valid must be served, not refused: the other half of "bad
// input gets a clear answer" is that good input never does.
func TestUnusualValidFramesAreServed(t *testing.T) {
	ts := startServer(t, echoOrClose, &wsgate.Config{ReadLimit: testReadLimit})
	atLimit := strings.Repeat("x", testReadLimit-len("é"))
	t.Run("UTF-8 sequence split across fragments", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(frame{opcode: opText, payload: []byte("caf\xc3")}, frame{fin: true, opcode: opCont, payload: []byte("\xa9")})
		rc.expectEcho("café")
		rc.closeClean()
	})
	t.Run("ping between fragments", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(frame{opcode: opText, payload: []byte("hel")}, frame{fin: true, opcode: opPing, payload: []byte("x")},
			frame{fin: true, opcode: opCont, payload: []byte("lo")})
		if p := rc.nextFrame(opPong).payload; string(p) != "x" {
			t.Errorf("pong payload %q, want %q", p, "x")
		}
		rc.expectEcho("hello")
		rc.closeClean()
	})
	t.Run("message of exactly ReadLimit bytes", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(text(atLimit + "é"))
		rc.expectEcho(atLimit + "é")
		rc.write(frame{opcode: opText, payload: []byte(atLimit)}, frame{fin: true, opcode: opCont, payload: []byte("é")})
		rc.expectEcho(atLimit + "é")
		rc.closeClean()
	})
	t.Run("empty message", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(text(""))
		rc.expectEcho("")
		rc.closeClean()
	})
}

// RFC 6455 §5.5.3: a pong carries exactly the payload of the ping it answers.
func TestPingGetsPongWithSamePayload(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	for _, payload := range []string{"abc", "", strings.Repeat("\x00\xff", 62) + "!"} {
		t.Run(fmt.Sprintf("%d bytes", len(payload)), func(t *testing.T) {
			rc, _ := dialRaw(t, ts, nil)
			rc.write(frame{fin: true, opcode: opPing, payload: []byte(payload)})
			if got := rc.nextFrame(opPong).payload; string(got) != payload {
				t.Errorf("pong payload %q, want %q", got, payload)
			}
			rc.write(text("after"))
			rc.expectEcho("after")
			rc.closeClean()
		})
	}
}

// RFC 6455 §5.5.1: a valid close frame is answered with a close frame, typically echoing the code,
// and the server then ends the TCP connection.
func TestValidCloseIsAnswered(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	t.Run("1000 bye", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.closeClean()
	})
	t.Run("no code", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(frame{fin: true, opcode: opClose})
		if got := rc.expectClose(); got.code != 1000 && got.code != int(wsgate.CloseNoStatus) {
			t.Errorf("answered %d %q, want an empty close frame or 1000", got.code, got.reason)
		}
	})
	// Every code wsgate itself may send (CloseCode docs, IANA registry) must be accepted from a peer.
	for _, code := range []int{1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			rc, _ := dialRaw(t, ts, nil)
			rc.write(closeFrame(code, "reason"))
			if got := rc.expectClose(); got.code != code && got.code != 1000 {
				t.Errorf("answered %d %q, want %d echoed (or 1000)", got.code, got.reason, code)
			}
		})
	}
	assertServes(t, ts)
}

// The server sends one close frame per connection and nothing after it, however the peer behaves.
func TestServerSendsExactlyOneCloseFrame(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	t.Run("server-initiated, peer answers then pings", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(text("close-me"))
		if got := parseClose(t, rc.nextFrame(opClose).payload); got.code != 4000 {
			t.Errorf("closed with %d, want 4000", got.code)
		}
		rc.write(frame{fin: true, opcode: opPing, payload: []byte("late")}, closeFrame(4000, ""), closeFrame(1000, ""))
		if rest := rc.drain(); len(rest) != 0 {
			t.Errorf("the server sent %v after its close frame", rest)
		}
	})
	t.Run("peer sends two close frames", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(closeFrame(1000, "one"), closeFrame(1000, "two"), text("after"))
		rc.wantClose(1000)
	})
	t.Run("protocol error, then more input", func(t *testing.T) {
		rc, _ := dialRaw(t, ts, nil)
		rc.write(frame{fin: true, rsv: rsv2, opcode: opText}, closeFrame(1000, ""), frame{fin: true, opcode: opPing})
		rc.wantClose(1002)
	})
	assertServes(t, ts)
}

// Bytes sent in the same TCP write as the handshake request belong to the WebSocket and must not
// be lost by the HTTP server's buffering.
func TestFramePipelinedWithHandshakeIsDelivered(t *testing.T) {
	ts := startServer(t, echoOrClose, nil)
	rc, resp := handshake(t, ts, upgradeRequest(http.MethodGet, ts.addr(), nil), text("early").bytes())
	rc.mustUpgrade(resp)
	rc.expectEcho("early")
	rc.closeClean()
}

// OnClose receives a *CloseError saying who closed and why.
func TestOnCloseReportsWhy(t *testing.T) {
	cases := []struct {
		name   string
		play   func(rc *rawConn)
		code   wsgate.CloseCode
		remote bool
	}{
		{"peer close 1000", func(rc *rawConn) { rc.closeClean() }, 1000, true},
		{"protocol error", func(rc *rawConn) {
			rc.write(frame{fin: true, rsv: rsv2, opcode: opText})
			rc.wantClose(1002)
		}, 1002, false},
		{"message too big", func(rc *rawConn) {
			rc.write(frame{fin: true, opcode: opBinary, payload: make([]byte, testReadLimit+1)})
			rc.wantClose(1009)
		}, 1009, false},
		{"invalid UTF-8", func(rc *rawConn) {
			rc.write(text("\xff"))
			rc.wantClose(1007)
		}, 1007, false},
		{"server close answered", func(rc *rawConn) {
			rc.write(text("close-me"))
			rc.nextFrame(opClose)
			rc.write(closeFrame(4000, ""))
			rc.drain()
		}, 4000, false},
		// The connection ended without a close frame: CloseError documents 1006 for that.
		{"TCP dropped without a close frame", func(rc *rawConn) { rc.nc.Close() }, 1006, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(echoOrClose)
			ts := startServer(t, rec, &wsgate.Config{ReadLimit: testReadLimit})
			rc, _ := dialRaw(t, ts, nil)
			tc.play(rc)
			_, ce := rec.nextClose(t, ioWait)
			if ce.Code != tc.code || ce.Remote != tc.remote {
				t.Errorf("OnClose got %v (Code %d, Remote %t), want Code %d, Remote %t", ce, ce.Code, ce.Remote, tc.code, tc.remote)
			}
		})
	}
}

// With permessage-deflate negotiated, RSV1 marks a compressed message, and only that: RSV1 on a
// control frame or a continuation, and RSV2/RSV3 always, fail the connection (RFC 7692 §6, RFC 6455
// §5.2); ReadLimit applies to the decompressed size.
func TestCompressedConnectionBadFrames(t *testing.T) {
	ts := startServer(t, echoOrClose, &wsgate.Config{ReadLimit: testReadLimit, Compression: true})
	offer := func(h http.Header) { h.Set("Sec-WebSocket-Extensions", "permessage-deflate") }
	t.Run("negotiated and working", func(t *testing.T) {
		rc, resp := dialRaw(t, ts, offer)
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
			t.Fatalf("Sec-WebSocket-Extensions = %q, want permessage-deflate", ext)
		}
		rc.write(frame{fin: true, rsv: rsv1, opcode: opText, payload: deflate(t, []byte("squeezed"))})
		rc.expectEcho("squeezed")
		// A reply of 512 bytes or more leaves compressed: RSV1 set, and it inflates to the echo.
		big := strings.Repeat("compressible ", 50) // 650 bytes: over the 512-byte threshold, under testReadLimit
		rc.write(frame{fin: true, rsv: rsv1, opcode: opText, payload: deflate(t, []byte(big))})
		f, err := rc.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if err := checkServerFrame(f, true); err != nil {
			t.Fatal(err)
		}
		if f.opcode != opText || f.rsv != rsv1 || len(f.payload) >= len(big) {
			t.Fatalf("got %v (%d bytes), want a compressed text frame", f, len(f.payload))
		}
		got, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(f.payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff}))))
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("inflate: %v", err)
		}
		if string(got) != big+" done" {
			t.Fatalf("inflated %d bytes %.40q…, want the echo", len(got), got)
		}
		rc.closeClean()
	})
	bomb := deflate(t, bytes.Repeat([]byte("a"), 64*testReadLimit))
	runCloseCases(t, ts, offer, []closeCase{
		{"RSV2", []frame{{fin: true, rsv: rsv2, opcode: opText, payload: []byte("abc")}}, 1002},
		{"RSV3", []frame{{fin: true, rsv: rsv3, opcode: opText, payload: []byte("abc")}}, 1002},
		{"RSV1 on a ping", []frame{{fin: true, rsv: rsv1, opcode: opPing, payload: []byte("abc")}}, 1002},
		{"RSV1 on a continuation", []frame{{opcode: opText, payload: []byte("abc")}, {fin: true, rsv: rsv1, opcode: opCont, payload: []byte("def")}}, 1002},
		{"decompresses beyond ReadLimit", []frame{{fin: true, rsv: rsv1, opcode: opBinary, payload: bomb}}, 1009},
		// 0xff: a final block of the reserved type 11 (RFC 1951 §3.2.3): not DEFLATE data.
		{"corrupt DEFLATE data", []frame{{fin: true, rsv: rsv1, opcode: opBinary, payload: []byte{0xff, 0xff, 0xff}}}, 1007},
	})
	runCloseCases(t, ts, nil, []closeCase{
		{"RSV1 when the client did not negotiate", []frame{{fin: true, rsv: rsv1, opcode: opText, payload: deflate(t, []byte("abc"))}}, 1002},
	})
}

// RFC 6455 §5.2: the most significant bit of a 64-bit payload length MUST be 0. Such a frame is a
// protocol error; it must not take the process down. A crash would kill the test binary, so the
// server runs in a child process.
func TestFrameLengthWithMSBSetIsRefused(t *testing.T) {
	inChildProcess(t, func(t *testing.T) {
		ts := startServer(t, echoOrClose, nil)
		rc, _ := dialRaw(t, ts, nil)
		hdr := []byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0}
		rc.send(append(hdr, maskKey[:]...))
		rc.wantClose(1002)
		assertServes(t, ts)
	})
}

// inChildProcess runs body in a copy of the test binary restricted to the calling test, and fails
// t with the child's output if the child fails or dies.
func inChildProcess(t *testing.T, body func(t *testing.T)) {
	const env = "WSGATE_TEST_CHILD"
	if os.Getenv(env) == t.Name() {
		body(t)
		return
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		if i := bytes.Index(out, []byte("panic:")); i >= 0 {
			out = out[i:]
		}
		t.Fatalf("child process failed (%v):\n%s", err, bytes.TrimSpace(out[:min(len(out), 4000)]))
	}
}

// FuzzServerFrames writes arbitrary bytes after a handshake, in chunks of chunk+1 bytes, then
// half-closes. Whatever the bytes, the server must not crash, must send only well-formed frames with
// at most one close frame and nothing after it, must end the TCP connection, and must release it.
func FuzzServerFrames(f *testing.F) {
	ts := startServer(f, echoOrClose, &wsgate.Config{ReadLimit: testReadLimit})
	seeds := [][]frame{
		{text("hello")},
		{{fin: true, opcode: opBinary, payload: []byte{0, 1, 2, 0xff}}},
		{{fin: true, opcode: opPing, payload: []byte("abc")}, {fin: true, opcode: opPong}},
		{{opcode: opText, payload: []byte("hel")}, {fin: true, opcode: opPing}, {fin: true, opcode: opCont, payload: []byte("lo")}},
		{{fin: true, opcode: opBinary, payload: make([]byte, 300)}, text("two")},
		{text("close-me"), closeFrame(4000, "")},
		{closeFrame(1000, "bye")},
	}
	for i, s := range seeds {
		var b []byte
		for _, fr := range s {
			b = append(b, fr.bytes()...)
		}
		f.Add(b, uint8(i*5))
	}
	// The header of a frame with a 64-bit length (70000 bytes, over the limit), without its payload.
	f.Add(append([]byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70}, maskKey[:]...), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		rc, _ := dialRaw(t, ts, nil)
		for p := data; len(p) > 0; {
			n := min(len(p), int(chunk)+1)
			if rc.trySend(p[:n]) != nil {
				break // the server has closed; it need not read the rest
			}
			p = p[n:]
		}
		_ = rc.nc.(*net.TCPConn).CloseWrite()
		if closes := rc.closeFrames(rc.drain()); len(closes) > 1 {
			t.Errorf("%d close frames", len(closes))
		}
		waitFor(t, ioWait, "the server to release the connection", func() bool { return ts.Stats().Connections == 0 })
	})
}
