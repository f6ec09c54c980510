package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
)

// Exit statuses of "wsgate client", documented in its usage text: scripts rely on them.
const (
	exitClosedByServer = 3 // the server closed with a code other than 1000, or before the -x reply
	exitNoReply        = 4 // no -x reply within -timeout
	exitTryAgain       = 5 // the server closed with a code that says come back (wsgate.CloseCode.Reconnectable), or refused the handshake with a Retry-After
)

// exitError is a failure of "wsgate client" with its own exit status; main prints it and exits with code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// clientOptions is the command line of "wsgate client".
type clientOptions struct {
	urls           []string // endpoints of one service, tried in this order
	header         http.Header
	origin         string
	subprotocols   []string
	binary         bool   // send lines (and -x) as binary messages
	base64         bool   // print binary messages in base64 instead of hex
	exec           string // -x: the one message to send; "-" reads it from stdin
	execSet        bool
	timeout        time.Duration // -x: wait for the reply
	connectTimeout time.Duration
	closeCode      int
	closeReason    string
	quiet          bool
	compression    bool
	subs           []string // -sub: the wsgate.v1 channels to follow (pub/sub mode)
	token          string   // -token, or the variable named by -token-env
	tokenEnv       string
}

func newClientFlagSet(o *clientOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("wsgate client", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.Func("H", "add a request `header`, \"Name: value\" (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return fmt.Errorf("want \"Name: value\", got %q", s)
		}
		o.header.Add(name, strings.TrimSpace(value))
		return nil
	})
	fs.StringVar(&o.origin, "origin", "", "send this `origin` as the Origin header, as a browser would")
	fs.Func("subprotocol", "offer a `subprotocol` (repeatable, or a comma-separated list in order of preference)", func(s string) error {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.subprotocols = append(o.subprotocols, p)
			}
		}
		return nil
	})
	fs.BoolVar(&o.binary, "binary", false, "send each line (and the -x message) as a binary message instead of text")
	fs.BoolVar(&o.base64, "base64", false, "print received binary messages in base64 instead of hex")
	fs.Func("x", "send this one `message`, print the first reply and exit; \"-\" reads the message from stdin (one trailing newline dropped)", func(s string) error {
		o.exec, o.execSet = s, true
		return nil
	})
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "with -x, how long to wait for the reply (exit status 4 after)")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", client.DefaultHandshakeTimeout, "bound on connecting and the WebSocket handshake")
	fs.IntVar(&o.closeCode, "close-code", int(wsgate.CloseNormal), "close `code` sent at the end of stdin or on Ctrl-C: 1000-1003, 1007-1014 or 3000-4999")
	fs.StringVar(&o.closeReason, "close-reason", "", "close `reason` sent with -close-code (at most 123 bytes)")
	fs.BoolVar(&o.quiet, "q", false, "quiet: no status lines (connected, subprotocol, closed) on stderr; errors are still printed")
	fs.BoolVar(&o.compression, "compression", false, "offer permessage-deflate")
	fs.StringVar(&o.token, "token", "", "identify with this `token`: an Authorization: Bearer header in raw mode, a wsgate.v1 connect with -sub (shown by ps and kept by the shell's history: prefer -token-env)")
	fs.StringVar(&o.tokenEnv, "token-env", "", "read the -token from this environment `variable`")
	fs.Func("sub", "pub/sub mode: subscribe to this wsgate.v1 `channel` (repeatable), print its publications as JSON lines, publish stdin's lines on the first one", func(s string) error {
		o.subs = append(o.subs, s)
		return nil
	})
	return fs
}

// parseClientArgs fills o from args. Flags may come before or after the URLs, as in
// "wsgate client ws://host/ws -x hi".
func parseClientArgs(o *clientOptions, args []string) (*flag.FlagSet, error) {
	o.header = http.Header{}
	fs := newClientFlagSet(o)
	var urls []string
	for {
		if err := fs.Parse(args); err != nil {
			return fs, err
		}
		if fs.NArg() == 0 {
			break
		}
		urls = append(urls, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(urls) == 0:
		return fs, errors.New("missing URL, e.g. wsgate client ws://localhost:8080/ws")
	case len(o.subs) > 0 && (o.execSet || o.binary || len(o.subprotocols) > 0):
		return fs, errors.New("-sub speaks wsgate.v1 in text: it goes with neither -x, -binary nor -subprotocol")
	case o.timeout <= 0 || o.connectTimeout <= 0:
		return fs, errors.New("-timeout and -connect-timeout must be positive")
	case !wsgate.CloseCode(o.closeCode).Sendable():
		return fs, fmt.Errorf("-close-code %d: want 1000-1003, 1007-1014 or 3000-4999", o.closeCode)
	case len(o.closeReason) > 123:
		return fs, fmt.Errorf("-close-reason is %d bytes, at most 123 fit a close frame", len(o.closeReason))
	case o.token != "" && o.tokenEnv != "":
		return fs, errors.New("-token and -token-env: give one")
	}
	if o.tokenEnv != "" {
		if o.token = os.Getenv(o.tokenEnv); o.token == "" {
			return fs, fmt.Errorf("-token-env %s: the variable is unset or empty", o.tokenEnv)
		}
	}
	if o.token != "" && len(o.subs) == 0 {
		if o.header.Get("Authorization") != "" {
			return fs, errors.New("-token sends an Authorization header: it goes without -H Authorization")
		}
		o.header.Set("Authorization", "Bearer "+o.token)
	}
	o.urls = urls
	return fs, nil
}

// printClientUsage prints the help of "wsgate client".
func printClientUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: wsgate client [flags] URL [URL...]

Connects to a WebSocket server (ws:// or wss://) and sends each line read from stdin as a
message. Every message received is printed on stdout: text as it is, binary as
"[binary hex] 6869" (or "[binary base64] aGk=" with -base64). Status lines (connected,
subprotocol, closed) and errors go to stderr, so stdout stays clean for pipes.

When stdin is a terminal a "> " prompt is shown. At the end of stdin (Ctrl-D) or on Ctrl-C the
client closes with -close-code (1000) and waits for the server's close frame, printing what
arrives meanwhile; at the end of stdin it first waits for the answers to two pings, so that the
server has read every line and written the replies it had queued.

  wsgate client ws://localhost:8080/ws                     interactive
  printf 'a\nb\n' | wsgate client ws://localhost:8080/ws   pipe: prints "a done", "b done"
  wsgate client ws://localhost:8080/ws -x Hello!           one message, one reply
  echo Hello! | wsgate client -q ws://localhost:8080/ws -x -

Several URLs (separate arguments) are nodes of one service: the client connects to the first
that answers, in the order given. When the connection is lost (1006) or the server closes with a
code that says come back (status 5 below), it tries the other URLs once each, in order, the one
just lost last, and goes on with the first that answers; what was in flight may be lost. With one
URL, or when none answers, it exits as described below.

Pub/sub mode (-sub CHANNEL, repeatable) speaks wsgate.v1: each publication is printed as a JSON
line, {"channel":...,"epoch":...,"offset":...,"data":...} with "recovered":true when it came from
history, and each line of stdin is published on the first channel (as JSON if it is valid JSON,
else as a JSON string). After a move to another URL it subscribes again from the last
publication printed: what was published meanwhile is printed first if that node shares the
history, else a "not recovered" status line says it is lost.

  wsgate client -sub chat ws://node1:8080/ws ws://node2:8080/ws

A token (-token, or better -token-env VAR, which keeps it out of ps and the shell's history)
identifies the client: in raw mode it is sent as "Authorization: Bearer TOKEN"; with -sub it goes
in a wsgate.v1 connect, first on every connection. A server that refuses it ends the client with
status 1 ("unauthorized"), or closes with 4001 (status 3); a token that expires on a live -sub
connection closes it with 4501: the client connects again with the same token, and the server
refuses it (status 1): get a fresh token and start again.

  WSGATE_TOKEN=$(wsgate token -user alice) wsgate client -token-env WSGATE_TOKEN -sub '#alice' ws://localhost:8080/ws

Exit status:
  0  the connection closed normally (1000, or without a code); with -x, the reply was printed
  1  connecting failed (a refused handshake prints its HTTP status and body), or the
     connection was lost (1006) or broken by the server (protocol error, message too big);
     with -sub, also a subscription the server refused
  2  usage error
  3  the server closed with another code, printed with its reason ("closed: 4000 bye");
     with -x, the server closed before replying
  4  with -x, no reply within -timeout (or Ctrl-C first)
  5  the server closed with a code after which a client should reconnect: 1001 (shutting
     down), 1011 (server error), 1012 (restart), 1013 (try again later, or "slow consumer":
     the client fell behind), 1014, or 4500-4999; or it refused the handshake with a
     Retry-After (503 while shedding load, 429; with several URLs, every one of them did),
     printed with the wait (the shortest); a script may retry with backoff, waiting at least
     what Retry-After says

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// runClient is "wsgate client": connect, then either -x (one message, one reply) or a session of
// stdin lines. stdin is os.Stdin in the binary; a terminal gets a prompt.
func runClient(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o clientOptions
	fs, err := parseClientArgs(&o, args)
	if errors.Is(err, flag.ErrHelp) {
		printClientUsage(stdout, fs)
		return nil
	}
	if err != nil {
		return usageError{fmt.Errorf("client: %w", err)}
	}
	typ := wsgate.Text
	if o.binary {
		typ = wsgate.Binary
	}
	var msg []byte
	if o.execSet {
		if msg, err = execMessage(o.exec, stdin, typ); err != nil {
			return err
		}
	}

	out := &printer{stdout: stdout, stderr: stderr, quiet: o.quiet, tty: isTerminal(stdin), base64: o.base64}
	if len(o.subs) > 0 {
		return runPubSub(ctx, &o, stdin, out)
	}
	c, at, err := dialClient(ctx, &o, 0)
	if err != nil {
		return err
	}
	s := &session{c: c, at: at, o: &o, out: out, typ: typ}
	defer func() { s.c.CloseNow() }()
	s.connected()
	if o.execSet {
		return s.once(ctx, msg)
	}
	return s.lines(ctx, stdin)
}

// execMessage is the -x message: the argument, or all of stdin without one trailing newline.
func execMessage(arg string, stdin io.Reader, typ wsgate.MessageType) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	b, err := io.ReadAll(stdin)
	if err != nil {
		return nil, fmt.Errorf("-x -: reading stdin: %w", err)
	}
	b = trimNewline(b)
	if typ == wsgate.Text && !utf8.Valid(b) {
		return nil, usageError{errors.New("-x -: stdin is not valid UTF-8 text; add -binary to send it as binary")}
	}
	return b, nil
}

// dialOptions are the options of every connection the client makes.
func (o *clientOptions) dialOptions() *client.Options {
	return &client.Options{
		Header:           o.header,
		Origin:           o.origin,
		Subprotocols:     o.subprotocols,
		HandshakeTimeout: o.connectTimeout,
		Compression:      o.compression,
	}
}

// dialClient connects to the first of the URLs that answers, trying them in order from index
// start, and returns the index of the one that did. Its errors are usage errors (bad URL or
// options, exit 2) or connection failures (exit 1) worded for a terminal.
func dialClient(ctx context.Context, o *clientOptions, start int) (*client.Conn, int, error) {
	urls := append(slices.Clone(o.urls[start:]), o.urls[:start]...)
	c, i, err := client.DialAny(ctx, urls, o.dialOptions())
	if err != nil {
		return nil, -1, connectError(urls, err)
	}
	return c, (start + i) % len(urls), nil
}

// connectError words DialAny's error for a terminal: a usage error for a bad URL or options.
func connectError(urls []string, err error) error {
	if errors.Is(err, client.ErrBadURL) || errors.Is(err, client.ErrBadOptions) {
		return usageError{err}
	}
	if len(urls) > 1 {
		msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "client: ", ""), "\n", "; ")
		if wait, ok := everyAsksToRetry(err); ok {
			// Every node is shedding or rate-limiting: come back later, as from one of them.
			return exitError{exitTryAgain, fmt.Errorf("cannot connect to any of the %d URLs: %s (the servers ask to retry after %s)", len(urls), msg, wait)}
		}
		return exitError{1, fmt.Errorf("cannot connect to any of the %d URLs: %s", len(urls), msg)}
	}
	if inner := errors.Unwrap(err); inner != nil {
		err = inner // the URL goes in front below
	}
	var he *client.HandshakeError
	if errors.As(err, &he) {
		msg := "handshake failed: " + he.Status
		if he.Body != "" {
			msg += ": " + he.Body
		}
		if he.RetryAfter > 0 {
			// Shedding (503) or a rate limit (429) that says when: come back later, like a 1013.
			return exitError{exitTryAgain, fmt.Errorf("%s (the server asks to retry after %s)", msg, he.RetryAfter)}
		}
		return exitError{1, errors.New(msg)}
	}
	return exitError{1, fmt.Errorf("cannot connect to %s: %s", urls[0], strings.TrimPrefix(err.Error(), "client: "))}
}

// everyAsksToRetry reports whether each endpoint of DialAny's error refused the handshake with a
// Retry-After, and the shortest wait among them. One refused connection or plain 403 is enough
// for no: then retrying is not what every server asked for.
func everyAsksToRetry(err error) (time.Duration, bool) {
	joined, ok := errors.Unwrap(err).(interface{ Unwrap() []error })
	if !ok {
		return 0, false
	}
	var shortest time.Duration
	for i, e := range joined.Unwrap() {
		var he *client.HandshakeError
		if !errors.As(e, &he) || he.RetryAfter <= 0 {
			return 0, false
		}
		if i == 0 || he.RetryAfter < shortest {
			shortest = he.RetryAfter
		}
	}
	return shortest, shortest > 0
}

// isTerminal reports whether r is an interactive terminal (a character device other than /dev/null).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}
