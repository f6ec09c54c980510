//go:build unix

package wsgate

import "syscall"

// rawWrites: a plain TCP connection's writes go straight to write(2) on its non-blocking socket
// (wire.tryWrite), and wait in the writer goroutine only when the socket is full.
const rawWrites = true

// rawWriteFD is tryWrite's callback: write(2) until the socket takes no more, never waiting.
func (w *wire) rawWriteFD(fd uintptr) bool {
	for len(w.tp) > 0 {
		k, e := syscall.Write(int(fd), w.tp)
		if k > 0 {
			w.tn += k
			w.tp = w.tp[k:]
		}
		if e == syscall.EINTR {
			continue
		}
		if e != nil && e != syscall.EAGAIN {
			w.terr = e
		}
		if e != nil || k <= 0 {
			break
		}
	}
	return true // never wait for the socket: the stash and the writer goroutine do
}
