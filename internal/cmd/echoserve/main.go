// Command echoserve runs one of internal/echoserver's echo servers in a process of its own, so that
// a benchmark can pin it to a CPU and measure its memory alone.
//
//	echoserve -impl gws|gorilla|wsgate -addr 127.0.0.1:0
//
// It prints the address it listens on as its first line of output, serves the echo at /ws, its own
// figures at GET /stats (JSON; ?gc=1 collects garbage first) and net/http/pprof at /debug/pprof/.
// It stops on SIGINT or SIGTERM, or by itself after -lifetime. See echoserver.Serve.
package main

import "github.com/wsgate/wsgate/internal/echoserver"

func main() {
	impls := map[string]func() (echoserver.Server, error){}
	for _, name := range echoserver.Impls {
		impls[name] = func() (echoserver.Server, error) { return echoserver.New(name) }
	}
	echoserver.Main("echoserve", impls)
}
