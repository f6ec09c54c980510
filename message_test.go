package wsgate_test

import (
	"strings"
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
