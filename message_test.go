package wsgate_test

import (
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate"
)

// What one peer can make a message cost: a bounded number of frames, a bounded time, and memory
// for what it has sent, not for what it announced (issue 9, item 15).

// A message of empty continuation frames that never ends is closed with 1009 once it has more
// than ReadLimit/64 frames (1,024 by default), at once: it no longer keeps a core busy.
func TestEndlessFragmentedMessageIsClosed(t *testing.T) {
	rec := newRecorder(echoDone.OnMessage)
	ts := startServer(t, rec, nil)
	rc, _ := dialRaw(t, ts, nil)
	b := frame{opcode: opText, payload: []byte("a")}.bytes()
	for range 5000 {
		b = append(b, frame{opcode: opCont}.bytes()...)
	}
	start := time.Now()
	_ = rc.trySend(b) // the server stops reading after the 1,025th frame
	got := rc.expectClose()
	if got.code != int(wsgate.CloseMessageTooBig) || !strings.Contains(got.reason, "frames") {
		t.Errorf("the server closed with %d %q, want 1009 naming the frames", got.code, got.reason)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closed after %v", d)
	}
	_, ce := rec.nextClose(t, ioWait)
	if ce.Code != wsgate.CloseMessageTooBig || ce.Reason != "message too big: too many frames" {
		t.Errorf("OnClose got %+v", ce)
	}
	assertServes(t, ts)
}

// A peer that announces a 64 KiB frame and sends one byte of it holds memory for what it sent,
// not for what it announced: the read buffer grows as the bytes arrive. Unpatched, each such
// connection held a 128 KiB buffer (the pool's size class for 64 KiB) for as long as it stayed.
func TestAnnouncedFrameReservesNoBuffer(t *testing.T) {
	const conns = 200
	var mu sync.Mutex
	reads := map[uint64]int{} // reads begun, per connection
	wsgate.SetTestHookRead(func(c *wsgate.Conn) {
		mu.Lock()
		reads[c.ID()]++
		mu.Unlock()
	})
	t.Cleanup(func() { wsgate.SetTestHookRead(nil) }) // after the server's cleanup: it waits for its readers
	ts := startServer(t, echoDone, nil)
	// readsAtLeast waits until every connection has begun n reads: its reader is parked in the
	// socket, having dealt with all it was sent.
	readsAtLeast := func(n int) {
		waitFor(t, 10*time.Second, "every reader to park", func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(reads) < conns {
				return false
			}
			for _, k := range reads {
				if k < n {
					return false
				}
			}
			return true
		})
	}
	rcs := make([]*rawConn, conns)
	for i := range rcs {
		rcs[i], _ = dialRaw(t, ts, nil)
	}
	readsAtLeast(1)
	before := heapAlloc()
	// FIN, binary, masked, 64-bit length 65536 (the read limit), the mask key, then one byte.
	partial := append(binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, 64<<10), maskKey[:]...)
	partial = append(partial, 'x'^maskKey[0])
	for _, rc := range rcs {
		rc.send(partial)
	}
	readsAtLeast(2) // each reader has taken the byte and waits for the rest
	after := heapAlloc()
	per := (int64(after) - int64(before)) / conns
	t.Logf("heap per connection holding 1 byte of an announced 64 KiB frame: %d bytes", per)
	if per > 16<<10 {
		t.Errorf("each connection grew the heap by %d bytes, want well below 64 KiB", per)
	}
	for _, rc := range rcs {
		_ = rc.nc.Close()
	}
}

// heapAlloc is the live heap after a collection.
func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// trickle sends chunks, one every interval, from a goroutine, until they run out, a write fails
// or the test ends (its cleanup stops the goroutine and waits for it).
func trickle(t *testing.T, rc *rawConn, every time.Duration, chunks ...[]byte) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // owner: the test; stopped by the cleanup below
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for _, c := range chunks {
			if rc.trySend(c) != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// bytewise splits p into 1-byte chunks.
func bytewise(p []byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i : i+1]
	}
	return out
}

// Liveness comes from complete frames: a peer that trickles bytes of a frame and never completes
// one is disconnected by the heartbeat within PingInterval+PongTimeout. Before, every byte counted
// as a sign of life and the connection stayed for ever.
func TestTrickledBytesAreNotLiveness(t *testing.T) {
	const ping, pong = 200 * time.Millisecond, 200 * time.Millisecond
	rec := newRecorder(echoDone.OnMessage)
	ts := startServer(t, rec, &wsgate.Config{PingInterval: ping, PongTimeout: pong})
	rc, _ := dialRaw(t, ts, nil)
	start := time.Now()
	trickle(t, rc, 20*time.Millisecond, bytewise(frame{fin: true, opcode: opBinary, payload: make([]byte, 1000)}.bytes())...)
	rc.drain() // a ping, then the end of the connection
	d := time.Since(start)
	if d > ping+pong+2*time.Second {
		t.Errorf("the connection ended after %v", d)
	}
	_, ce := rec.nextClose(t, ioWait)
	if ce.Code != wsgate.CloseAbnormal || !errors.Is(ce, wsgate.ErrPongTimeout) {
		t.Errorf("OnClose got %+v, want 1006 wrapping ErrPongTimeout", ce)
	}
	t.Logf("dropped after %v", d)
}
