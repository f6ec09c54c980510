// Package echoserver holds minimal WebSocket echo servers used as yardsticks for wsgate's
// benchmarks: raw gws (our transport's floor), raw gorilla/websocket (the seed's library) and wsgate
// itself, with its default runtime ("wsgate": idle connections are parked) and with a reader
// goroutine per connection ("wsgate-goroutine": Config.ParkAfter -1). Each echoes every data
// message back unchanged, in the frame type it came in, with the same read limit and no
// compression, and nothing else: no origin check, and no heartbeat but wsgate's own unless
// Options.PingInterval asks for one.
//
// Every server is an http.Handler to mount on any route, and has a Close that ends its connections
// and waits for their goroutines, so a test can check that nothing leaks.
package echoserver

import (
	"fmt"
	"net/http"
	"time"
)

// ReadLimit is the largest message every server accepts, in bytes.
const ReadLimit = 1 << 20

// Server is an echo server.
type Server interface {
	http.Handler
	// Close ends every connection at once and waits for their goroutines.
	Close() error
}

// Options tune a server for one benchmark. The zero value is each server as it always ran.
type Options struct {
	// PingInterval, when positive, turns heartbeats on at this pace: wsgate's Config.PingInterval;
	// raw gws gets the loop a gws user writes (ServeGWSPings); gorilla has none and refuses it.
	// Zero: wsgate's default (25 s), none for the others.
	PingInterval time.Duration
}

// PongTimeout is how long the peer of a server with Options.PingInterval has to answer, as
// wsgate's default (wsgate.DefaultPongTimeout).
const PongTimeout = 10 * time.Second

// Impls names the implementations New knows, in the order benchmarks run them.
var Impls = []string{"gws", "gorilla", "wsgate", "wsgate-goroutine"}

// New returns the echo server named impl, as NewWith with zero Options.
func New(impl string) (Server, error) { return NewWith(impl, Options{}) }

// NewWith returns the echo server named impl ("gws", "gorilla", "wsgate" or "wsgate-goroutine")
// tuned by o.
func NewWith(impl string, o Options) (Server, error) {
	if o.PingInterval < 0 {
		return nil, fmt.Errorf("echoserver: negative ping interval %v", o.PingInterval)
	}
	switch impl {
	case "gws":
		return newGWS(o), nil
	case "gorilla":
		if o.PingInterval > 0 {
			return nil, fmt.Errorf("echoserver: gorilla has no heartbeat (ping interval %v)", o.PingInterval)
		}
		return NewGorilla(), nil
	case "wsgate":
		return newWsgate(o, 0, nil)
	case "wsgate-goroutine":
		return newWsgate(o, -1, nil)
	}
	return nil, fmt.Errorf("echoserver: unknown implementation %q (want gws, gorilla, wsgate or wsgate-goroutine)", impl)
}
