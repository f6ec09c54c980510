package wsgate

// SetTestHookRead makes f run in the transport's read path, before each read from the socket, on
// the connection's reader goroutine: a panic there is a panic of the transport. nil removes it.
func SetTestHookRead(f func(*Conn)) {
	if f == nil {
		testHookRead.Store(nil)
		return
	}
	testHookRead.Store(&f)
}

// PendingPongs returns how many pongs c owes and has not yet handed to the socket.
func PendingPongs(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pongs)
}
