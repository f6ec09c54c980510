// Command echoserve runs one of internal/echoserver's echo servers in a process of its own, so that
// a benchmark can pin it to a CPU and measure its memory alone.
//
//	echoserve -impl gws|gorilla|wsgate -addr 127.0.0.1:0
//
// It prints the address it listens on as its first line of output, serves the echo at /ws, its own
// figures at GET /stats (JSON; ?gc=1 collects garbage first) and net/http/pprof at /debug/pprof/.
// It stops on SIGINT or SIGTERM, or by itself after -lifetime.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/echoserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echoserve:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("echoserve", flag.ContinueOnError)
	impl := fs.String("impl", "wsgate", "echo server: "+strings.Join(echoserver.Impls, ", "))
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	lifetime := fs.Duration("lifetime", time.Hour, "stop by itself after this long")
	memRate := fs.Int("memprofilerate", 0, "set runtime.MemProfileRate (1 = record every allocation; 0 = Go's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	echo, err := echoserver.New(*impl)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", echo)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(readStats(*impl, r.URL.Query().Get("gc") == "1"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(stdout, ln.Addr().String())

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }() // owner: run; ends when hs shuts down
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = hs.Shutdown(sctx) // the listener and idle HTTP conns; WebSockets are hijacked
	_ = echo.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Stats is what GET /stats returns.
type Stats struct {
	Impl       string `json:"impl"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	VmRSS      uint64 `json:"vmrss"` // bytes
	Goroutines int    `json:"goroutines"`
	NumGC      uint32 `json:"num_gc"`
	CPUNanos   int64  `json:"cpu_ns"` // user + system CPU time used so far
}

func readStats(impl string, gc bool) Stats {
	if gc {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return Stats{Impl: impl, HeapInuse: m.HeapInuse, StackInuse: m.StackInuse, Sys: m.Sys,
		VmRSS: vmRSS(), Goroutines: runtime.NumGoroutine(), NumGC: m.NumGC, CPUNanos: cpuNanos()}
}

// cpuNanos returns the user and system CPU time the process has used (0 where unavailable).
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// vmRSS reads the resident set size from /proc/self/status, in bytes (0 where unavailable).
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "1234 kB"
			if len(f) >= 1 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
