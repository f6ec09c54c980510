//go:build !unix

package wsgate

import "errors"

// rawWrites: elsewhere (Windows) a socket is not a descriptor that write(2) takes, so wire.raw
// stays nil and every connection writes as a TLS one does, through net.Conn, blocking in the
// writer goroutine (docs/RUNTIME.md).
const rawWrites = false

// rawWriteFD is never called where rawWrites is false.
func (w *wire) rawWriteFD(uintptr) bool {
	w.terr = errors.ErrUnsupported
	return true
}
