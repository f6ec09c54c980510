// Package echoserver holds three minimal WebSocket echo servers used as yardsticks for wsgate's
// benchmarks: raw gws (our transport's floor), raw gorilla/websocket (the seed's library) and wsgate
// itself. Each echoes every data message back unchanged, in the frame type it came in, with the same
// read limit and no compression, and nothing else: no origin check, no heartbeat of its own.
//
// Every server is an http.Handler to mount on any route, and has a Close that ends its connections
// and waits for their goroutines, so a test can check that nothing leaks.
package echoserver

import (
	"fmt"
	"net/http"
)

// ReadLimit is the largest message every server accepts, in bytes.
const ReadLimit = 1 << 20

// Server is an echo server.
type Server interface {
	http.Handler
	// Close ends every connection at once and waits for their goroutines.
	Close() error
}

// Impls names the implementations New knows, in the order benchmarks run them.
var Impls = []string{"gws", "gorilla", "wsgate"}

// New returns the echo server named impl: "gws", "gorilla" or "wsgate".
func New(impl string) (Server, error) {
	switch impl {
	case "gws":
		return NewGWS(), nil
	case "gorilla":
		return NewGorilla(), nil
	case "wsgate":
		return NewWsgate()
	}
	return nil, fmt.Errorf("echoserver: unknown implementation %q (want gws, gorilla or wsgate)", impl)
}
