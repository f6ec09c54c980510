package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
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
	exitTryAgain       = 5 // the server closed with a code that says come back (wsgate.CloseCode.Reconnectable)
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
	url            string
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
	return fs
}

// parseClientArgs fills o from args. Flags may come before or after the URL, as in
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
	case len(urls) > 1:
		return fs, fmt.Errorf("unexpected argument %q: one URL only", urls[1])
	case o.timeout <= 0 || o.connectTimeout <= 0:
		return fs, errors.New("-timeout and -connect-timeout must be positive")
	case !wsgate.CloseCode(o.closeCode).Sendable():
		return fs, fmt.Errorf("-close-code %d: want 1000-1003, 1007-1014 or 3000-4999", o.closeCode)
	case len(o.closeReason) > 123:
		return fs, fmt.Errorf("-close-reason is %d bytes, at most 123 fit a close frame", len(o.closeReason))
	}
	o.url = urls[0]
	return fs, nil
}

// sendableCode reports whether a client may send code in a close frame (RFC 6455 §7.4).
func printClientUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: wsgate client [flags] URL

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

Exit status:
  0  the connection closed normally (1000, or without a code); with -x, the reply was printed
  1  connecting failed (a refused handshake prints its HTTP status and body), or the
     connection was lost (1006) or broken by the server (protocol error, message too big)
  2  usage error
  3  the server closed with another code, printed with its reason ("closed: 4000 bye");
     with -x, the server closed before replying
  4  with -x, no reply within -timeout (or Ctrl-C first)
  5  the server closed with a code after which a client should reconnect: 1001 (shutting
     down), 1011 (server error), 1012 (restart), 1013 (try again later, or "slow consumer":
     the client fell behind), 1014, or 4500-4999; a script may retry with backoff

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

	c, err := dialClient(ctx, &o)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	out := &printer{stdout: stdout, stderr: stderr, quiet: o.quiet, tty: isTerminal(stdin), base64: o.base64}
	out.status("connected: %s", o.url)
	if p := c.Subprotocol(); p != "" {
		out.status("subprotocol: %s", p)
	}
	s := &session{c: c, o: &o, out: out, typ: typ}
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

// dialClient connects; its errors are usage errors (bad URL or options, exit 2) or connection
// failures (exit 1) worded for a terminal.
func dialClient(ctx context.Context, o *clientOptions) (*client.Conn, error) {
	c, _, err := client.Dial(ctx, o.url, &client.Options{
		Header:           o.header,
		Origin:           o.origin,
		Subprotocols:     o.subprotocols,
		HandshakeTimeout: o.connectTimeout,
		Compression:      o.compression,
	})
	var he *client.HandshakeError
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, client.ErrBadURL), errors.Is(err, client.ErrBadOptions):
		return nil, usageError{err}
	case errors.As(err, &he):
		msg := "handshake failed: " + he.Status
		if he.Body != "" {
			msg += ": " + he.Body
		}
		return nil, exitError{1, errors.New(msg)}
	}
	return nil, exitError{1, fmt.Errorf("cannot connect to %s: %s", o.url, strings.TrimPrefix(err.Error(), "client: "))}
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
