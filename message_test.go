package wsgate_test

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// A peer that announces a 64 KiB frame and sends part of it holds memory for what it sent, not
// for what it announced: at most 16 times what it sent plus 4 KiB (docs/BOUNDS.md), measured on
// the heap with the buffer the transport's pool really gives (its size class), not the size
// asked for. Unpatched, each such connection held a 128 KiB buffer (the pool's size class for
// 64 KiB) for as long as it stayed; with gws patch 12 as first written, a peer that sent 3,900
// bytes made the server hold 128 KiB too.
func TestAnnouncedFrameReservesNoBuffer(t *testing.T) {
	for _, sent := range []int{1, 2000, 3900, 5000} {
		t.Run(fmt.Sprint(sent), func(t *testing.T) { announcedFrameHolds(t, sent) })
	}
}

func announcedFrameHolds(t *testing.T, sent int) {
	const conns = 100
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
	// FIN, binary, masked, 64-bit length 65536 (the read limit), the mask key, then sent bytes.
	partial := append(binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, 64<<10), maskKey[:]...)
	for i := range sent {
		partial = append(partial, 'x'^maskKey[i%4])
	}
	for _, rc := range rcs {
		rc.send(partial)
	}
	// Each reader has taken the bytes and waits for the rest: one read for the 4 KiB the first
	// fill takes, one more for the rest of them.
	readsAtLeast(2 + min(1, len(partial)/4096))
	after := heapAlloc()
	per := (int64(after) - int64(before)) / conns
	bound := int64(16*sent + 4096)
	t.Logf("heap per connection holding %d bytes of an announced 64 KiB frame: %d bytes (bound %d)", sent, per, bound)
	if per > bound+1024 { // the bound, and a little for what else a read allocates
		t.Errorf("each connection grew the heap by %d bytes for %d sent, want at most 16× what it sent plus 4 KiB (%d)", per, sent, bound)
	}
	for _, rc := range rcs {
		_ = rc.nc.Close()
	}
}

// heapAlloc is the live heap after two collections: the first moves what sync.Pools hold (the
// transport's buffer pool among them) to their victim caches, the second frees it, so that a
// buffer pooled before a measurement does not count in it, nor one taken from the pool meanwhile
// go unseen.
func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// wantClose waits for the next OnClose and fails unless it reports code, wrapping target.
func (r *recorder) wantClose(t *testing.T, code wsgate.CloseCode, target error) {
	t.Helper()
	if _, ce := r.nextClose(t, ioWait); ce.Code != code || !errors.Is(ce, target) {
		t.Errorf("OnClose got %+v, want %d wrapping %v", ce, code, target)
	}
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

// A peer that trickles a frame's bytes keeps sending, but never completes a message: it is closed
// with 1008 once the message has taken MessageTimeout, and dropped after CloseTimeout, since it
// cannot answer our close from inside its frame.
func TestTricklingPeerIsCutAtMessageTimeout(t *testing.T) {
	const msgTimeout, closeTimeout = 400 * time.Millisecond, 300 * time.Millisecond
	rec := newRecorder(echoDone.OnMessage)
	ts := startServer(t, rec, &wsgate.Config{MessageTimeout: msgTimeout, CloseTimeout: closeTimeout})
	rc, _ := dialRaw(t, ts, nil)
	start := time.Now()
	// 1,000 bytes at one every 20 ms would take 20 s.
	trickle(t, rc, 20*time.Millisecond, bytewise(frame{fin: true, opcode: opBinary, payload: make([]byte, 1000)}.bytes())...)
	got := rc.expectClose()
	d := time.Since(start)
	if got.code != int(wsgate.ClosePolicyViolation) || got.reason != "message timeout" {
		t.Errorf("the server closed with %d %q, want 1008 \"message timeout\"", got.code, got.reason)
	}
	if d < msgTimeout-50*time.Millisecond || d > msgTimeout+closeTimeout+2*time.Second {
		t.Errorf("the connection ended after %v; want about %v + %v", d, msgTimeout, closeTimeout)
	}
	rec.wantClose(t, wsgate.ClosePolicyViolation, wsgate.ErrMessageTimeout)
	t.Logf("closed after %v", d)
}

// Control frames between the fragments of a message prove the peer alive, but do not extend the
// message: it must still end within MessageTimeout.
func TestPingsDoNotExtendAMessage(t *testing.T) {
	const msgTimeout = 400 * time.Millisecond
	ts := startServer(t, echoDone, &wsgate.Config{MessageTimeout: msgTimeout, CloseTimeout: 300 * time.Millisecond})
	rc, _ := dialRaw(t, ts, nil)
	start := time.Now()
	chunks := [][]byte{frame{opcode: opText, payload: []byte("never ends")}.bytes()}
	for range 100 {
		chunks = append(chunks, frame{fin: true, opcode: opPing}.bytes())
	}
	trickle(t, rc, 20*time.Millisecond, chunks...)
	var closes []frame
	for _, f := range rc.drain() {
		if f.opcode == opClose {
			closes = append(closes, f)
		}
	}
	d := time.Since(start)
	if len(closes) != 1 || parseClose(t, closes[0].payload).code != int(wsgate.ClosePolicyViolation) {
		t.Fatalf("close frames %v, want one with 1008", closes)
	}
	if d < msgTimeout-50*time.Millisecond {
		t.Errorf("closed after %v, before the message timeout", d)
	}
}

// Liveness comes from complete frames: a peer that trickles bytes of a frame and never completes
// one is disconnected by the heartbeat within PingInterval+PongTimeout, even without a message
// timeout. Before, every byte counted as a sign of life and the connection stayed for ever.
func TestTrickledBytesAreNotLiveness(t *testing.T) {
	const ping, pong = 200 * time.Millisecond, 200 * time.Millisecond
	rec := newRecorder(echoDone.OnMessage)
	ts := startServer(t, rec, &wsgate.Config{PingInterval: ping, PongTimeout: pong, MessageTimeout: -1})
	rc, _ := dialRaw(t, ts, nil)
	start := time.Now()
	trickle(t, rc, 20*time.Millisecond, bytewise(frame{fin: true, opcode: opBinary, payload: make([]byte, 1000)}.bytes())...)
	rc.drain() // a ping, then the end of the connection
	d := time.Since(start)
	if d > ping+pong+2*time.Second {
		t.Errorf("the connection ended after %v", d)
	}
	rec.wantClose(t, wsgate.CloseAbnormal, wsgate.ErrPongTimeout)
	t.Logf("dropped after %v", d)
}

// The time the reader spends in OnMessage is the server's, not the peer's: a message that began
// arriving while a slow handler ran is not cut for it.
func TestSlowHandlerDoesNotCountAgainstMessageTimeout(t *testing.T) {
	const msgTimeout = 200 * time.Millisecond
	h := wsgate.HandlerFunc(func(c *wsgate.Conn, m wsgate.Message) {
		if string(m.Data) == "slow" {
			time.Sleep(4 * msgTimeout)
		}
		echoDone(c, m)
	})
	ts := startServer(t, h, &wsgate.Config{MessageTimeout: msgTimeout})
	rc, _ := dialRaw(t, ts, nil)
	next := text("next").bytes()
	// "slow" and the first 3 bytes of "next" arrive together: "next" has begun when the handler starts.
	rc.send(append(text("slow").bytes(), next[:3]...))
	rc.expectEcho("slow")
	rc.send(next[3:])
	rc.expectEcho("next")
	rc.closeClean()
}
