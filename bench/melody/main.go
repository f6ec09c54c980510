// Command echoserve-melody is an olahol/melody echo server for the comparison in bench/ (run by
// internal/cmd/echobench -suite compare). It lives in a module of its own so that melody never
// enters wsgate's go.mod, and runs through echoserver.Serve like the other Go servers: the same
// address line, /ws, /stats and pprof, the same read limit, no compression, no origin check.
package main

import (
	"errors"
	"net/http"

	"github.com/olahol/melody"

	"github.com/wsgate/wsgate/internal/echoserver"
)

func main() {
	echoserver.Main("echoserve-melody", map[string]func(echoserver.Options) (echoserver.Server, error){"melody": newMelody})
}

// melodyEcho echoes every message in the frame type it came in. Melody's defaults are kept but
// two: the read limit (512 B by default) is the comparison's, and the per-session send buffer
// (256 messages, beyond which melody drops the session) is left as it is, which the pipelined
// window of 16 never reaches.
type melodyEcho struct{ m *melody.Melody }

func newMelody(o echoserver.Options) (echoserver.Server, error) {
	if o.PingInterval != 0 { // melody pings on its own pace (Config.PingPeriod); not tuned here
		return nil, errors.New("melody: -ping-interval is not supported")
	}
	m := melody.New()
	m.Config.MaxMessageSize = echoserver.ReadLimit
	m.Upgrader.CheckOrigin = func(*http.Request) bool { return true } // as the other yardsticks
	m.HandleMessage(func(s *melody.Session, msg []byte) { _ = s.Write(msg) })
	m.HandleMessageBinary(func(s *melody.Session, msg []byte) { _ = s.WriteBinary(msg) })
	return melodyEcho{m}, nil
}

func (e melodyEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = e.m.HandleRequest(w, r)
}

func (e melodyEcho) Close() error { return e.m.Close() }
