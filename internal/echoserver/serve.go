package echoserver

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Main is the main function of an echoserve process: Serve with the process's arguments until
// SIGINT or SIGTERM, then exit (status 1 on an error, printed with name).
func Main(name string, impls map[string]func(Options) (Server, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Serve(ctx, name, os.Args[1:], os.Stdout, impls)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Serve is the whole of an echoserve process: it runs the server named by -impl (one of impls)
// alone, prints the address it listens on as its first line of output, serves the echo at /ws,
// its own figures at GET /stats (JSON; ?gc=1 collects garbage first), the Go runtime's and the
// process's Prometheus metrics at GET /metrics (client_golang's Go and process collectors, as
// Centrifugo serves them: go_memstats_heap_inuse_bytes, go_goroutines, …) and net/http/pprof at
// /debug/pprof/, and returns when ctx ends or -lifetime has passed. -ping-interval sets
// Options.PingInterval.
//
// internal/cmd/echoserve calls it with this package's servers; nested modules under bench/ call
// it with theirs (olahol/melody), so that every Go server of a comparison is measured alike.
func Serve(ctx context.Context, name string, args []string, stdout io.Writer, impls map[string]func(Options) (Server, error)) error {
	names := slices.Sorted(maps.Keys(impls))
	def := names[0]
	if _, ok := impls["wsgate"]; ok {
		def = "wsgate"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	impl := fs.String("impl", def, "echo server: "+strings.Join(names, ", "))
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	lifetime := fs.Duration("lifetime", time.Hour, "stop by itself after this long")
	var o Options
	fs.DurationVar(&o.PingInterval, "ping-interval", 0, "heartbeat: ping every connection this often (0: the server's default, which is none but for wsgate's 25s)")
	memRate := fs.Int("memprofilerate", 0, "set runtime.MemProfileRate (1 = record every allocation; 0 = Go's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	newServer, ok := impls[*impl]
	if !ok {
		return fmt.Errorf("unknown -impl %q (want %s)", *impl, strings.Join(names, ", "))
	}
	echo, err := newServer(o)
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
		_ = json.NewEncoder(w).Encode(ReadStats(*impl, r.URL.Query().Get("gc") == "1"))
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(stdout, ln.Addr().String())

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }() // owner: Serve; ends when hs shuts down
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

// Stats is what GET /stats returns. A server of another language (bench/node) returns the same
// fields it can fill.
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

// ReadStats reads the process's figures, after a garbage collection if gc.
func ReadStats(impl string, gc bool) Stats {
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
