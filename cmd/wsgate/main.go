// Command wsgate is the wsgate server binary: the WebSocket endpoint at /ws, the demo page at / and
// a health check at /healthz, configured by flags and WSGATE_* environment variables. It is also a
// terminal client for any WebSocket server, in the spirit of wscat and websocat.
//
//	wsgate [serve] [flags]
//	wsgate client [flags] URL [URL...]
//	wsgate bench MODE [flags]
//	wsgate config check FILE
//	wsgate token -user USER [-ttl 1h] [-info JSON] [-channels a,b] [-config FILE]
//
// Run "wsgate -h", "wsgate client -h" or "wsgate bench -h" for every flag; the client's help lists
// its exit statuses. "wsgate bench" is the load tool: echo, idle, connect and fanout runs.
// "wsgate config check" reports every error of a config file with its key; "wsgate token" mints
// a development token. docs/CONFIG.md documents every setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default behaviour: a second Ctrl-C kills a shutdown that hangs.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsgate:", err)
		code := exitCode(err)
		if code == 2 {
			fmt.Fprintln(os.Stderr, "Run 'wsgate -h' (server), 'wsgate client -h' (client) or 'wsgate bench -h' (load tool) for usage.")
		}
		os.Exit(code)
	}
}

// run is the whole program behind main, testable: args without the program name, env to read the
// environment (os.Getenv), stdout for requested output such as -h, stderr for logs. It returns when
// ctx is cancelled and everything has shut down, or on the first error; exitCode maps that error to
// the process's exit status.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve" // plain "wsgate [flags]" serves
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, env, stdout, stderr)
	case "client":
		return runClient(ctx, args, os.Stdin, stdout, stderr)
	case "bench":
		return runBench(ctx, args, os.Stdin, stdout, stderr)
	case "config":
		return runConfig(args, env, stdout)
	case "token":
		return runToken(ctx, args, env, stdout, stderr)
	}
	return usageError{fmt.Errorf("unknown command %q (want serve, client, bench, config or token)", cmd)}
}

// usageError marks a mistake in the command line or the environment rather than a failure at run
// time: the process exits with status 2, as flag.ExitOnError would.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode is the process exit status for run's result: 0 for success, 2 for usage errors, the
// code of an exitError ("wsgate client"), 1 otherwise.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if errors.As(err, new(usageError)) {
		return 2
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
