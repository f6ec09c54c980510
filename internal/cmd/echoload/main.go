// Command echoload is a small, bounded load generator for WebSocket echo servers on loopback.
//
// It opens -conns connections with gorilla/websocket, then for -duration keeps -window messages of
// -size bytes in flight on each (1 = closed loop: send, wait for the echo, send again), verifies every
// echo byte for byte and reports messages per second, latency percentiles, per-connection counts with
// Jain's fairness index, and errors; -json prints the same as one JSON object.
//
// With -idle N it opens N connections, prints "open N" once they are all up, and holds them without
// traffic until stdin closes, a signal arrives or -duration passes.
//
// It stops by itself: every phase is bounded in time, and it talks only to the -url given, which
// must be a loopback address.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echoload:", err)
		os.Exit(1)
	}
}

type options struct {
	url       string
	conns     int
	size      int
	duration  time.Duration
	window    int
	idle      int
	sourceIPs int
	text      bool
	json      bool
	dialers   int
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("echoload", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:8080/ws", "echo server URL (loopback only)")
	fs.IntVar(&o.conns, "conns", 100, "connections")
	fs.IntVar(&o.size, "size", 32, "message size in bytes")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long to send (with -idle: the longest hold)")
	fs.IntVar(&o.window, "window", 1, "messages in flight per connection (1 = closed loop)")
	fs.IntVar(&o.idle, "idle", 0, "open N connections, print \"open N\" and hold them without traffic")
	fs.IntVar(&o.sourceIPs, "source-ips", 1, "spread dials over 127.0.0.1..127.0.0.N as local addresses")
	fs.BoolVar(&o.text, "text", false, "send text frames (default binary)")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.IntVar(&o.dialers, "dialers", 64, "concurrent dials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	if o.idle > 0 {
		return holdIdle(ctx, o, stdin, stdout)
	}
	res, err := load(ctx, o)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	res.print(stdout)
	return nil
}

const maxDuration = 10 * time.Minute

func (o *options) check() error {
	u, err := url.Parse(o.url)
	if err != nil {
		return fmt.Errorf("bad -url: %w", err)
	}
	if u.Scheme != "ws" {
		return errors.New("-url must be ws://")
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url host %q is not a loopback address", host)
	}
	switch {
	case o.conns < 1 || o.conns > 50000:
		return errors.New("-conns must be within 1..50000")
	case o.idle < 0 || o.idle > 50000:
		return errors.New("-idle must be within 0..50000")
	case o.size < 1 || o.size > 1<<20:
		return errors.New("-size must be within 1..1048576")
	case o.window < 1 || o.window > 1024:
		return errors.New("-window must be within 1..1024")
	case o.duration <= 0 || o.duration > maxDuration:
		return fmt.Errorf("-duration must be within (0, %v]", maxDuration)
	case o.sourceIPs < 1 || o.sourceIPs > 254:
		return errors.New("-source-ips must be within 1..254")
	case o.dialers < 1:
		return errors.New("-dialers must be positive")
	}
	return nil
}
