package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// holdIdle opens o.idle connections, prints "open N" (N = how many opened) and holds them until
// stdin closes, ctx ends or o.duration passes. Each connection keeps a reader, so that server pings
// are answered, and sends nothing.
func holdIdle(ctx context.Context, o options, stdin io.Reader, stdout io.Writer) error {
	dctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	conns, failed, err := dialAll(dctx, o, o.idle)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer closeAll(conns)
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func(c *websocket.Conn) { // owner: holdIdle; ends when closeAll closes c
			defer wg.Done()
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}(c)
	}
	fmt.Fprintf(stdout, "open %d\n", o.idle-failed)
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "echoload: %d of %d dials failed; first error: %v\n", failed, o.idle, err)
	}
	eof := make(chan struct{})
	go func() { // owner: holdIdle; ends with stdin, or with the process
		_, _ = io.Copy(io.Discard, stdin)
		close(eof)
	}()
	t := time.NewTimer(o.duration)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-eof:
	case <-t.C:
	}
	return nil
}
