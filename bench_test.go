package wsgate_test

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/internal/echoserver"
)

// Benchmarks run only with -bench. Figures and the commands that produced them: BENCHMARKS.md.

var benchSizes = []struct {
	name string
	n    int
}{{"32B", 32}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

// connGrabber hands the server side of each new connection to the benchmark.
type connGrabber struct{ ch chan *wsgate.Conn }

func (g connGrabber) OnOpen(c *wsgate.Conn)                { g.ch <- c }
func (connGrabber) OnMessage(*wsgate.Conn, wsgate.Message) {}
func (connGrabber) OnClose(*wsgate.Conn, error)            {}

// BenchmarkSend measures Conn.Send and everything it sets in motion on the server (queueing, the
// writer, framing, the socket write) per message, into a connection whose client drains the raw
// bytes without parsing them (so that the client allocates nothing per message). The queue
// refuses messages while full (PolicyDropNewest) and the benchmark retries them: allocs/op is
// what the Send path costs per delivered message.
func BenchmarkSend(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			g := connGrabber{ch: make(chan *wsgate.Conn, 1)}
			ts := startServer(b, g, &wsgate.Config{SlowConsumer: wsgate.PolicyDropNewest})
			ws := dial(b, ts.URL, nil)
			c := <-g.ch
			drained := make(chan error, 1)
			go func() { // owner: this benchmark; ends when ws is closed (its cleanup)
				_, err := io.Copy(io.Discard, ws.UnderlyingConn())
				drained <- err
			}()
			b.Cleanup(func() { ws.Close(); <-drained })
			msg := bytes.Repeat([]byte{'x'}, sz.n)
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for {
					err := c.Send(wsgate.Binary, msg)
					if err == nil {
						break
					}
					if !errors.Is(err, wsgate.ErrQueueFull) {
						b.Fatal(err)
					}
					runtime.Gosched()
				}
			}
			// Count the writes too: wait until the queue is empty.
			for c.Stats().Queued > 0 {
				runtime.Gosched()
			}
		})
	}
}

// BenchmarkEcho measures one echo round trip over loopback (write a message, read its echo, check
// it) against each of internal/echoserver's servers, so that
//
//	go test -run '^$' -bench Echo -count 5 | tee echo.txt
//
// gives wsgate side by side with raw gws and raw gorilla/websocket (benchstat echo.txt). The client
// is gorilla/websocket in every case; allocs/op counts both sides.
func BenchmarkEcho(b *testing.B) {
	for _, impl := range echoserver.Impls {
		b.Run(impl, func(b *testing.B) {
			for _, sz := range []struct {
				name string
				n    int
			}{{"32B", 32}, {"64KiB", 64 << 10}} {
				b.Run(sz.name, func(b *testing.B) { benchEcho(b, impl, sz.n) })
			}
		})
	}
}

func benchEcho(b *testing.B, impl string, n int) {
	srv, err := echoserver.New(impl)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(func() { hs.Close(); _ = srv.Close() })
	d := websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: n + 14}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ws.Close() })
	msg := bytes.Repeat([]byte{'e'}, n)
	buf := make([]byte, n+1)
	_ = ws.SetReadDeadline(time.Now().Add(time.Minute))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		msg[0] = byte(i)
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			b.Fatal(err)
		}
		typ, r, err := ws.NextReader()
		if err != nil {
			b.Fatal(err)
		}
		got, err := io.ReadFull(r, buf)
		if err != io.ErrUnexpectedEOF || typ != websocket.BinaryMessage || !bytes.Equal(buf[:got], msg) {
			b.Fatalf("echo %d: type %d, %d bytes, err %v", i, typ, got, err)
		}
	}
}
