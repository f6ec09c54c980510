// Command echoserve runs one of internal/echoserver's echo servers in a process of its own, so that
// a benchmark can pin it to a CPU and measure its memory alone.
//
//	echoserve -impl gws|gorilla|wsgate|wsgate-goroutine|wsgate-shed -addr 127.0.0.1:0 [-ping-interval 5s]
//
// It prints the address it listens on as its first line of output, serves the echo at /ws, its own
// figures at GET /stats (JSON; ?gc=1 collects garbage first), the Go runtime's Prometheus metrics at
// GET /metrics and net/http/pprof at /debug/pprof/.
// It stops on SIGINT or SIGTERM, or by itself after -lifetime. See echoserver.Serve.
//
// wsgate-shed is wsgate with Config.MaxHandshakeRate from the environment variable
// WSGATE_MAX_HANDSHAKE_RATE (the one "wsgate serve" reads for -max-handshake-rate), default 2000:
// the storm suite of internal/cmd/echobench compares it with the others.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/internal/echoserver"
)

func main() {
	impls := map[string]func(echoserver.Options) (echoserver.Server, error){}
	for _, name := range echoserver.Impls {
		impls[name] = func(o echoserver.Options) (echoserver.Server, error) { return echoserver.NewWith(name, o) }
	}
	impls["wsgate-shed"] = func(o echoserver.Options) (echoserver.Server, error) {
		rate := 2000
		if v := os.Getenv("WSGATE_MAX_HANDSHAKE_RATE"); v != "" {
			var err error
			if rate, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("WSGATE_MAX_HANDSHAKE_RATE: %w", err)
			}
		}
		return echoserver.NewWsgateWith(o, func(c *wsgate.Config) { c.MaxHandshakeRate = rate })
	}
	echoserver.Main("echoserve", impls)
}
