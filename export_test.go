package wsgate

import "sync/atomic"

// SetTestHookRead makes f run in the transport's read path, before each read from the socket, on
// the connection's reader goroutine: a panic there is a panic of the transport. nil removes it.
func SetTestHookRead(f func(*Conn)) { setHook(&testHookRead, f) }

// PendingPongs returns how many pongs c owes and has not yet handed to the socket.
func PendingPongs(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pongs)
}

// SetTestHookRestore makes f run when a read clears the heartbeat's read deadline, on the reader
// goroutine, just before the deadline is set. nil removes it.
func SetTestHookRestore(f func(*Conn)) { setHook(&testHookRestore, f) }

// SetTestHookWritten makes f run on the goroutine writing c (the writer, or the reader inline)
// once a batch has been written and the wire's lock released, before the batch is settled. nil
// removes it.
func SetTestHookWritten(f func(*Conn)) { setHook(&testHookWritten, f) }

func setHook(h *atomic.Pointer[func(*Conn)], f func(*Conn)) {
	if f == nil {
		h.Store(nil)
		return
	}
	h.Store(&f)
}

// WriterIdle reports whether no goroutine is writing c's queue.
func WriterIdle(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.writing
}
