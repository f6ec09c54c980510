package wsgate_test

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// A connection whose park the poller refuses must read on (parkSelf's contract), not die: here
// the poller cannot be made (epoll_create1 fails with EMFILE: the descriptor table is full, as in
// a reconnect storm at the file limit). parkSelf falls back to ResumeReadLoop without resume(),
// so the read deadline the scanner set in the past (aLongTimeAgo) is still there: the next read
// fails at once, stopReading finds no parkReq, and the connection ends as a "pong timeout".
func TestReviewParkRefusedConnectionReadsOn(t *testing.T) {
	ts := startServer(t, echoDone, parkConfig())
	rc, _ := dialRaw(t, ts, nil)
	rc.write(text("hello"))
	rc.expectEcho("hello")

	// Fill the descriptor table: the lowest free descriptor becomes the limit.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	lowest := f.Fd()
	f.Close()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(lowest)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // ParkAfter is 50 ms: several parks refused
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if p := ts.Stats().Parked; p != 0 {
		t.Fatalf("Parked = %d without a poller", p)
	}
	rc.write(text("still here"))
	rc.expectEcho("still here")
}
