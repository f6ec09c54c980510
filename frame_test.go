package wsgate_test

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
)

// frameSizes straddle every boundary of the frame header's length encoding (RFC 6455 §5.2):
// 7-bit up to 125, 16-bit up to 65535, 64-bit beyond.
var frameSizes = []int{0, 1, 125, 126, 127, 65535, 65536, 70000}

// payloadFor is n bytes that say which message they belong to: seq as four ASCII digits first,
// when they fit, then a pattern depending on seq and position (valid UTF-8 throughout).
func payloadFor(seq, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte('a' + (seq+i)%26)
	}
	if n >= 4 {
		for i := range 4 {
			p[i] = '0' + byte(seq/pow10(3-i)%10)
		}
	}
	return p
}

func pow10(k int) int {
	n := 1
	for range k {
		n *= 10
	}
	return n
}

// TestFramesEveryLengthEncoding checks the frames wsgate builds itself, read by gorilla: every
// header length at its boundaries, text and binary, by Send and SendPrepared, written inline by the
// reader after a handler (replies) and by the writer goroutine (Sends from elsewhere, in batches
// mixing small and large frames), with and without permessage-deflate.
func TestFramesEveryLengthEncoding(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", compress), func(t *testing.T) {
			cfg := &wsgate.Config{ReadLimit: 1 << 20, SendQueueBytes: 4 << 20, SendQueueMessages: 1024,
				SlowConsumer: wsgate.PolicyDropNewest, Compression: compress}
			// The handler answers "n" with an n-byte binary reply and "p n" with a prepared text one.
			h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
				s := string(m.Data)
				prepared := len(s) > 2 && s[:2] == "p "
				if prepared {
					s = s[2:]
				}
				n, err := strconv.Atoi(s)
				if err != nil {
					t.Errorf("bad request %q", m.Data)
					return
				}
				if prepared {
					pm, err := wsgate.NewPreparedMessage(wsgate.Text, payloadFor(n, n))
					if err == nil {
						err = c.SendPrepared(pm)
					}
					if err != nil {
						t.Errorf("SendPrepared(%d): %v", n, err)
					}
				} else if err := c.Send(wsgate.Binary, payloadFor(n, n)); err != nil {
					t.Errorf("Send(%d): %v", n, err)
				}
			})
			ts := startServer(t, h, cfg)
			d := websocket.Dialer{EnableCompression: compress, ReadBufferSize: 4096}
			ws, resp, err := d.Dial(ts.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if got := resp.Header.Get("Sec-WebSocket-Extensions") != ""; got != compress {
				t.Fatalf("permessage-deflate negotiated: %v, want %v", got, compress)
			}
			read := func(wantType int, want []byte) {
				t.Helper()
				ws.SetReadDeadline(time.Now().Add(5 * time.Second))
				typ, got, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("read %d bytes: %v", len(want), err)
				}
				if typ != wantType || !bytes.Equal(got, want) {
					t.Fatalf("got type %d, %d bytes; want type %d, %d bytes (equal prefix: %v)", typ, len(got), wantType,
						len(want), bytes.HasPrefix(got, want[:min(len(want), 8)]))
				}
			}

			// Inline replies, one at a time.
			for _, n := range frameSizes {
				ws.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(n)))
				read(websocket.BinaryMessage, payloadFor(n, n))
				ws.WriteMessage(websocket.TextMessage, []byte("p "+strconv.Itoa(n)))
				read(websocket.TextMessage, payloadFor(n, n))
			}

			// From another goroutine, as fast as the queue takes them: batches mix sizes.
			var conn *wsgate.Conn
			ts.Range(func(c *wsgate.Conn) bool { conn = c; return false })
			const rounds = 20
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := range rounds * len(frameSizes) {
					n := frameSizes[seq%len(frameSizes)]
					for {
						err := conn.Send(wsgate.Binary, payloadFor(seq, n))
						if err == nil {
							break
						}
						if err != wsgate.ErrQueueFull {
							t.Errorf("Send: %v", err)
							return
						}
						time.Sleep(time.Millisecond)
					}
				}
			}()
			for seq := range rounds * len(frameSizes) {
				n := frameSizes[seq%len(frameSizes)]
				read(websocket.BinaryMessage, payloadFor(seq, n))
			}
			wg.Wait()
			if err := conn.Close(wsgate.CloseNormal, "bye"); err != nil {
				t.Fatal(err)
			}
			ce := readClose(t, ws)
			if ce.Code != websocket.CloseNormalClosure || ce.Text != "bye" {
				t.Fatalf("close: %v", ce)
			}
		})
	}
}

// TestLargeRepliesToASlowReader makes the reader's non-blocking write come back short: replies
// far bigger than the socket buffers, to a client that does not read for a while. The rest of the
// frame waits in its own buffer for the writer goroutine, and the replies queued behind it keep
// their order.
func TestLargeRepliesToASlowReader(t *testing.T) {
	const big = 8 << 20
	cfg := &wsgate.Config{SendQueueBytes: 64 << 20, SendQueueMessages: 64}
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		seq, _ := strconv.Atoi(string(m.Data))
		if err := c.Send(wsgate.Binary, payloadFor(seq, big)); err != nil {
			t.Errorf("Send big: %v", err)
		}
		if err := c.Send(wsgate.Text, payloadFor(seq, 100)); err != nil {
			t.Errorf("Send small: %v", err)
		}
	})
	ts := startServer(t, h, cfg)
	ws := dial(t, ts.URL, nil)
	for seq := range 3 {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(seq))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the server's writes fill the socket buffers meanwhile
	for seq := range 3 {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for _, want := range [][]byte{payloadFor(seq, big), payloadFor(seq, 100)} {
			_, got, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("message %d: %v", seq, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("message %d: got %d bytes, want %d (same start: %v)", seq, len(got), len(want),
					bytes.HasPrefix(got, want[:8]))
			}
		}
	}
}
