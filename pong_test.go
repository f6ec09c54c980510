package wsgate_test

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
)

// pingFrame is a ping whose payload carries n, padded to size bytes (at most 125).
func pingFrame(n, size int) frame {
	p := []byte(strconv.Itoa(n))
	p = append(p, bytes.Repeat([]byte{'.'}, max(size-len(p), 0))...)
	return frame{fin: true, opcode: opPing, payload: p}
}

// pongNumber is the n of a pong answering pingFrame(n, ...).
func pongNumber(t testing.TB, f frame) int {
	t.Helper()
	n, err := strconv.Atoi(string(bytes.TrimRight(f.payload, ".")))
	if err != nil {
		t.Fatalf("pong with a payload no ping carried: %v", f)
	}
	return n
}

// Every ping gets its pong, with its payload, in order (RFC 6455 §5.5.2, as gorilla/websocket and
// gws answer): ten pings in a row get ten pongs, not only the last one.
func TestEveryPingGetsItsPong(t *testing.T) {
	ts := startServer(t, echoDone, nil)
	rc, _ := dialRaw(t, ts, nil)
	var pings []frame
	for i := range 10 {
		pings = append(pings, pingFrame(i, 0))
	}
	rc.write(append(pings, text("after the pings"))...)
	for i := range 10 {
		f := rc.nextFrame(opPong)
		if got := pongNumber(t, f); got != i {
			t.Fatalf("pong %d answers ping %d; want every ping answered in order", i, got)
		}
	}
	rc.expectEcho("after the pings")
	rc.closeClean()
}

// A ping flood from a peer that does not read its pongs holds a bounded number of them: the
// latest pings are answered, in order, the oldest beyond the bound go without, and the data
// messages queued meanwhile are written, not starved.
func TestPingFloodIsBounded(t *testing.T) {
	const pings = 20000 // 125-byte payloads: 2.6 MB of pings, 2.5 MB of pongs if each were kept
	ts := startServer(t, echoDone, nil)
	rc, _ := dialRaw(t, ts, nil)
	c := onlyConn(t, ts)
	var most atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if n := int64(wsgate.PendingPongs(c)); n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Microsecond):
			}
		}
	}()
	var b []byte
	for i := range pings {
		b = append(b, pingFrame(i, 125).bytes()...)
		if i == pings/2 {
			b = append(b, text("mid").bytes()...)
		}
		if len(b) > 64<<10 {
			rc.send(b)
			b = b[:0]
		}
	}
	rc.send(append(b, text("end").bytes()...))

	last, echoes := -1, 0
	for echoes < 2 || last < pings-1 {
		f, err := rc.readFrame()
		if err != nil {
			t.Fatalf("after the pong of ping %d and %d echoes: %v", last, echoes, err)
		}
		switch f.opcode {
		case opPong:
			n := pongNumber(t, f)
			if n <= last {
				t.Fatalf("pong of ping %d after the pong of ping %d: out of order", n, last)
			}
			last = n
		case opText:
			want := []string{"mid done", "end done"}[min(echoes, 1)]
			if string(f.payload) != want {
				t.Fatalf("got %v, want %q", f, want)
			}
			echoes++
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
	close(stop)
	<-watched
	if n := most.Load(); n > 16 {
		t.Fatalf("%d pongs were pending at once; the bound is 16", n)
	}
	t.Logf("at most %d pongs pending at once", most.Load())
	rc.closeClean()
}
