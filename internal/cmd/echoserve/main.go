// Command echoserve runs one of internal/echoserver's echo servers in a process of its own, so that
// a benchmark can pin it to a CPU and measure its memory alone.
//
//	echoserve -impl gws|gorilla|wsgate|wsgate-goroutine -addr 127.0.0.1:0 [-ping-interval 5s]
//
// It prints the address it listens on as its first line of output, serves the echo at /ws, its own
// figures at GET /stats (JSON; ?gc=1 collects garbage first), the Go runtime's Prometheus metrics at
// GET /metrics and net/http/pprof at /debug/pprof/.
// It stops on SIGINT or SIGTERM, or by itself after -lifetime. See echoserver.Serve.
package main

import "github.com/wsgate/wsgate/internal/echoserver"

func main() {
	impls := map[string]func(echoserver.Options) (echoserver.Server, error){}
	for _, name := range echoserver.Impls {
		impls[name] = func(o echoserver.Options) (echoserver.Server, error) { return echoserver.NewWith(name, o) }
	}
	echoserver.Main("echoserve", impls)
}
