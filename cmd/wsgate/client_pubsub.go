package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
	"github.com/wsgate/wsgate/client/pubsub"
	"github.com/wsgate/wsgate/protocol"
)

// pubLine is how "wsgate client -sub" prints a publication: one JSON object per line.
type pubLine struct {
	Channel   string          `json:"channel"`
	Epoch     string          `json:"epoch"`
	Offset    uint64          `json:"offset"`
	Data      json.RawMessage `json:"data"`
	Recovered bool            `json:"recovered,omitempty"`
}

// runPubSub is "wsgate client -sub CHANNEL URL...": a wsgate.v1 session (client/pubsub) that
// prints the publications of its channels and publishes stdin's lines on the first one. It moves
// to the other URLs when its connection is lost (one round over them, as in raw mode) and
// subscribes again there from the last publication printed.
func runPubSub(ctx context.Context, o *clientOptions, stdin io.Reader, out *printer) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	var refused error // a subscription the server refused for good
	s, err := pubsub.New(o.urls, &pubsub.Options{
		Dial:        o.dialOptions(),
		Token:       o.token,
		InOrder:     true,
		MaxAttempts: 1, // after a loss, one round over the URLs, the one lost last
		OnConnect:   func(url string) { out.status("connected: %s", url) },
		OnConnected: func(c pubsub.Connected) {
			out.status("identified: user %q, connection %s, expires in %v", c.User, c.Client, c.ExpiresIn)
		},
		OnUnsubscribed: func(channel string) { out.status("unsubscribed by the server: %s", channel) },
		OnDisconnect: func(url string, err error) {
			var ce *wsgate.CloseError
			if errors.As(err, &ce) && ctx.Err() == nil {
				out.status("connection to %s ended: %s", url, describe(ce))
			}
		},
		OnSubscribed: func(sb pubsub.Subscribed) {
			switch {
			case sb.Since == nil:
				out.status("subscribed: %s at %s/%d", sb.Channel, sb.Epoch, sb.Offset)
			case sb.Recovered:
				out.status("subscribed: %s at %s/%d, recovered from %s/%d", sb.Channel, sb.Epoch, sb.Offset, sb.Since.Epoch, sb.Since.Offset)
			default:
				out.status("subscribed: %s at %s/%d, not recovered: what came after %s/%d is lost", sb.Channel, sb.Epoch, sb.Offset, sb.Since.Epoch, sb.Since.Offset)
			}
		},
		OnPublication: func(p pubsub.Publication) {
			line, _ := json.Marshal(pubLine{p.Channel, p.Epoch, p.Offset, p.Data, p.Recovered})
			out.message(wsgate.Text, line)
		},
		OnGap: func(g pubsub.Gap) {
			out.errorf("lost: %s publications after %s/%d up to %s/%d", g.Channel, g.Since.Epoch, g.Since.Offset, g.Epoch, g.Offset)
		},
		OnError: func(channel string, err error) {
			if channel == "" { // the connection's identity (a refresh): the session goes on
				out.errorf("%v", err)
				return
			}
			out.errorf("%s: %v", channel, err)
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code < 200 || pe.Code >= 300 { // 2xx: retried
				mu.Lock()
				refused = fmt.Errorf("subscription to %s refused: %w", channel, err)
				mu.Unlock()
				stop()
			}
		},
	})
	if err != nil {
		return usageError{err}
	}
	for _, ch := range o.subs {
		if err := s.Subscribe(ch, nil); err != nil {
			return usageError{fmt.Errorf("-sub %q: %w", ch, err)}
		}
	}
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }() // owner: runPubSub; ends with ctx, waited for below

	lines := make(chan []byte)
	linesDone := make(chan struct{})
	defer close(linesDone)
	// owner: runPubSub; ends at stdin's end, or at the next line once runPubSub has returned (a
	// read blocked on a terminal cannot be interrupted: it then lasts until the process exits).
	go readLines(stdin, lines, linesDone)
	for {
		out.prompt()
		select {
		case line, ok := <-lines:
			if !ok {
				out.endPrompt()
				stop() // the end of stdin: close with 1000
				err := <-ran
				mu.Lock()
				defer mu.Unlock()
				return pubsubResult(out, o, err, refused)
			}
			out.entered()
			publishLine(ctx, s, o, out, line)
		case err := <-ran:
			out.endPrompt()
			mu.Lock()
			defer mu.Unlock()
			return pubsubResult(out, o, err, refused)
		}
	}
}

// publishLine publishes one line of stdin on the first channel: as JSON if it is, else as a
// string. Between connections it waits for the next, up to -timeout.
func publishLine(parent context.Context, s *pubsub.Session, o *clientOptions, out *printer, line []byte) {
	data := json.RawMessage(line)
	if !json.Valid(line) {
		data, _ = json.Marshal(string(line))
	}
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	for {
		_, err := s.Publish(ctx, o.subs[0], data)
		if err == nil || parent.Err() != nil {
			return // published, or the client is ending
		}
		if errors.Is(err, pubsub.ErrNotConnected) {
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				err = fmt.Errorf("no connection within %v", o.timeout)
			}
		}
		out.errorf("not published: %v", err)
		return
	}
}

// pubsubResult turns how the session ended into run's result.
func pubsubResult(out *printer, o *clientOptions, err error, refused error) error {
	if refused != nil {
		return exitError{1, refused}
	}
	var ce *wsgate.CloseError
	switch {
	case err == nil:
		out.status("closed: %s", describe(&wsgate.CloseError{Code: wsgate.CloseNormal}))
		return nil
	case errors.Is(err, client.ErrBadURL), errors.Is(err, client.ErrBadOptions):
		return usageError{err}
	case errors.Is(err, pubsub.ErrUnauthorized):
		return exitError{1, err}
	case !errors.As(err, &ce):
		return connectError(o.urls, err)
	}
	res := closeResult(out, ce)
	var ee exitError
	if errors.As(res, &ee) && error(ce) != err { // lost, then no URL answered: say both
		return exitError{ee.code, errors.New(strings.TrimPrefix(err.Error(), "pubsub: "))}
	}
	return res
}
