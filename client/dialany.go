package client

import (
	"context"
	"errors"
	"fmt"
)

// DialAny connects to the first of urls that completes the WebSocket handshake, trying them in
// the order given, one after the other, each bounded by Options.HandshakeTimeout; ctx bounds them
// all. It is how a client reaches a service served by several nodes (a wsgate cluster): put the
// node that should be tried last at the end, the one just lost for instance. It returns the
// connection and the index in urls of the endpoint that answered.
//
// When none answers, the error joins every attempt's error, each prefixed with its URL:
// errors.As finds a *HandshakeError among them, errors.Is ErrBadHandshake. A URL that is not
// ws:// or wss://, or Options that cannot work, end DialAny at once (ErrBadURL, ErrBadOptions):
// they are mistakes to fix, not nodes that are down. An empty urls is an ErrBadURL.
func DialAny(ctx context.Context, urls []string, opts *Options) (*Conn, int, error) {
	if len(urls) == 0 {
		return nil, -1, fmt.Errorf("%w: no URL to dial", ErrBadURL)
	}
	var errs []error
	for i, u := range urls {
		c, _, err := Dial(ctx, u, opts)
		if err == nil {
			return c, i, nil
		}
		if errors.Is(err, ErrBadURL) || errors.Is(err, ErrBadOptions) {
			return nil, -1, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, -1, errs[0]
	}
	return nil, -1, fmt.Errorf("client: no endpoint answered: %w", errors.Join(errs...))
}
