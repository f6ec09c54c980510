package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
)

// printer writes what "wsgate client" shows: messages on stdout, status lines and the prompt on
// stderr. Its methods are called by the session and by the goroutine printing messages; the lock
// keeps their lines whole and in order.
type printer struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
	quiet          bool // no status lines
	tty            bool // stdin is a terminal: prompt
	base64         bool // binary messages in base64 rather than hex
	prompted       bool // a prompt is on screen
}

// message prints a received message: text as it is, binary marked and encoded.
func (p *printer) message(typ wsgate.MessageType, data []byte) {
	line := string(data)
	if typ == wsgate.Binary {
		if p.base64 {
			line = "[binary base64] " + base64.StdEncoding.EncodeToString(data)
		} else {
			line = "[binary hex] " + hex.EncodeToString(data)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unprompt()
	fmt.Fprintln(p.stdout, line)
	p.reprompt()
}

// status prints a status line on stderr, unless quiet.
func (p *printer) status(format string, args ...any) {
	if p.quiet {
		return
	}
	p.errorf(format, args...)
}

// errorf prints a line on stderr, even when quiet.
func (p *printer) errorf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unprompt()
	fmt.Fprintf(p.stderr, format+"\n", args...)
	p.reprompt()
}

// prompt shows "> " on a terminal, once the line before was sent.
func (p *printer) prompt() {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.prompted {
		fmt.Fprint(p.stderr, "> ")
		p.prompted = true
	}
}

// entered is called when a line was read: the terminal moved past the prompt.
func (p *printer) entered() {
	p.mu.Lock()
	p.prompted = false
	p.mu.Unlock()
}

// endPrompt is called when no more input is read: output no longer needs a prompt after it.
func (p *printer) endPrompt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unprompt()
	p.tty, p.prompted = false, false
}

// unprompt erases a prompt on screen (carriage return, erase line) before other output.
func (p *printer) unprompt() {
	if p.prompted {
		fmt.Fprint(p.stderr, "\r\x1b[K")
	}
}

// reprompt puts the prompt back after other output.
func (p *printer) reprompt() {
	if p.prompted {
		fmt.Fprint(p.stderr, "> ")
	}
}

// session is "wsgate client" after the handshake: its connection, replaced when it moves to
// another URL.
type session struct {
	c   *client.Conn
	at  int // the index in o.urls of c's endpoint
	o   *clientOptions
	out *printer
	typ wsgate.MessageType // of the messages sent
}

// connected says which endpoint the connection went to.
func (s *session) connected() {
	s.out.status("connected: %s", s.o.urls[s.at])
	if p := s.c.Subprotocol(); p != "" {
		s.out.status("subprotocol: %s", p)
	}
}

// failover moves to another URL after the connection ended with ce, if there are others and ce
// says the server may be reached again (lost, or a reconnectable close): the others are tried
// once each, in order, the one just lost last. It reports whether a new connection is open.
func (s *session) failover(ctx context.Context, ce *wsgate.CloseError) bool {
	lost := ce.Code == wsgate.CloseAbnormal
	again := ce.Remote && ce.Code != wsgate.CloseNoStatus && ce.Code.Reconnectable()
	if len(s.o.urls) < 2 || !lost && !again || ctx.Err() != nil {
		return false
	}
	s.out.status("connection to %s ended: %s; trying the other URLs", s.o.urls[s.at], describe(ce))
	c, at, err := dialClient(ctx, s.o, (s.at+1)%len(s.o.urls))
	if err != nil {
		s.out.errorf("%v", err)
		return false
	}
	s.c.CloseNow()
	s.c, s.at = c, at
	s.connected()
	return true
}

// once is -x: send msg, print the first message received, close.
func (s *session) once(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.timeout)
	defer cancel()
	err := s.c.Write(ctx, s.typ, msg)
	var typ wsgate.MessageType
	var reply []byte
	if err == nil {
		typ, reply, err = s.c.Read(ctx)
	}
	var ce *wsgate.CloseError
	switch {
	case err == nil:
		s.out.message(typ, reply)
		err = s.closeByUs(false)
		return s.after(err, s.drain(false))
	case errors.As(err, &ce):
		if ce.Remote && (ce.Code == wsgate.CloseNormal || ce.Code == wsgate.CloseNoStatus) {
			return exitError{exitClosedByServer, fmt.Errorf("closed before the reply: %s", describe(ce))}
		}
		return s.ended(ce)
	case ctx.Err() != nil:
		_ = s.closeByUs(false)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return exitError{exitNoReply, fmt.Errorf("no reply within %v", s.o.timeout)}
		}
		return exitError{exitNoReply, errors.New("interrupted before the reply")}
	}
	return s.after(err, s.drain(false)) // a failed write: the connection's end says why
}

// lines sends each line of stdin until its end, then closes; messages are printed as they come.
// It returns as soon as the server ends the connection, without waiting for stdin.
func (s *session) lines(ctx context.Context, stdin io.Reader) error {
	lines := make(chan []byte)
	stop := make(chan struct{})
	defer close(stop)
	// owner: lines; ends at stdin's end or error, or at the next line once stop is closed. A read
	// blocked on a terminal cannot be interrupted: then it outlives lines, until the process exits.
	go readLines(stdin, lines, stop)
	received := make(chan *wsgate.CloseError, 1)
	receive := func() {
		go func() { received <- s.drain(true) }() // owner: lines; ends with the connection, waited for below
	}
	receive()

	for {
		s.out.prompt()
		select {
		case line, ok := <-lines:
			if !ok {
				s.out.endPrompt()
				err := s.closeByUs(true)
				return s.after(err, <-received)
			}
			s.out.entered()
			if err := s.send(ctx, line); err != nil {
				return s.after(err, <-received)
			}
		case ce := <-received:
			if s.failover(ctx, ce) {
				receive() // the drain of the connection lost has returned: it sent ce
				continue
			}
			s.out.endPrompt()
			return s.ended(ce)
		case <-ctx.Done(): // Ctrl-C
			s.out.endPrompt()
			err := s.closeByUs(false)
			return s.after(err, <-received)
		}
	}
}

// send writes one line; a line that is not valid UTF-8 is refused (say so, and go on).
func (s *session) send(ctx context.Context, line []byte) error {
	err := s.c.Write(ctx, s.typ, line)
	switch {
	case errors.Is(err, client.ErrInvalidUTF8):
		s.out.errorf("line not sent: not valid UTF-8 (-binary sends lines as binary)")
		return nil
	case errors.Is(err, client.ErrClosed):
		return nil // the connection is ending; received says how
	}
	if err != nil {
		s.c.CloseNow()
	}
	return err
}

// drain reads until the connection ends, printing the messages if show, and returns how it ended.
func (s *session) drain(show bool) *wsgate.CloseError {
	for {
		typ, data, err := s.c.Read(context.Background())
		if err != nil {
			var ce *wsgate.CloseError
			if !errors.As(err, &ce) { // cannot happen: Read without a deadline ends with a CloseError
				ce = &wsgate.CloseError{Code: wsgate.CloseAbnormal, Err: err}
			}
			return ce
		}
		if show {
			s.out.message(typ, data)
		}
	}
}

// closeByUs closes with -close-code. At the end of stdin (barrier) it first waits for the answers
// to two pings, one after the other: the server has then read every line, and written what it had
// queued in reply before the second ping; otherwise a server that answers a close frame at once
// could drop those replies (wsgate's did: its pong may also overtake queued messages, hence two).
func (s *session) closeByUs(barrier bool) error {
	if barrier {
		ctx, cancel := context.WithTimeout(context.Background(), client.DefaultCloseTimeout)
		for range 2 {
			if s.c.Ping(ctx) != nil {
				break // the connection is ending, or the server is slow: close anyway
			}
		}
		cancel()
	}
	err := s.c.Close(wsgate.CloseCode(s.o.closeCode), s.o.closeReason)
	if errors.Is(err, client.ErrClosed) {
		return nil // the server closed first: its close says the rest
	}
	return err
}

// after turns the end of a session we closed (or whose write failed) into run's result.
func (s *session) after(err error, ce *wsgate.CloseError) error {
	if err != nil && ce.Err == nil {
		return exitError{1, err}
	}
	return s.ended(ce)
}

// ended turns how the connection ended into run's result, and says it.
func (s *session) ended(ce *wsgate.CloseError) error { return closeResult(s.out, ce) }

// closeResult turns how a connection ended into run's result (the exit statuses of the help),
// and prints the status line of a normal close.
func closeResult(out *printer, ce *wsgate.CloseError) error {
	switch {
	case ce.Code == wsgate.CloseAbnormal || ce.Err != nil:
		return exitError{1, fmt.Errorf("connection lost: %s", describe(ce))}
	case !ce.Remote, ce.Code == wsgate.CloseNormal, ce.Code == wsgate.CloseNoStatus:
		out.status("closed: %s", describe(ce))
		return nil
	case ce.Code.Reconnectable():
		return exitError{exitTryAgain, fmt.Errorf("closed: %s", describe(ce))}
	}
	return exitError{exitClosedByServer, fmt.Errorf("closed: %s", describe(ce))}
}

// describe words a close for a terminal: "1001 server shutting down".
func describe(ce *wsgate.CloseError) string {
	s := fmt.Sprint(int(ce.Code))
	if ce.Code == wsgate.CloseNoStatus {
		s += " (no code)"
	}
	if ce.Reason != "" {
		s += " " + ce.Reason
	}
	if ce.Err != nil {
		s += ": " + ce.Err.Error()
	}
	return s
}

// readLines sends each line of r, without its line ending, on lines; it closes lines at the end of r.
func readLines(r io.Reader, lines chan<- []byte, stop <-chan struct{}) {
	defer close(lines)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && (err == nil || err == io.EOF) {
			select {
			case lines <- trimNewline(line):
			case <-stop:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// trimNewline drops one trailing "\n" or "\r\n".
func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n > 1 && b[n-2] == '\r' {
			b = b[:n-2]
		}
	}
	return b
}
