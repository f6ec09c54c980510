package main

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// dialAll opens n connections, o.dialers at a time, spreading their local addresses over
// 127.0.0.1..127.0.0.<o.sourceIPs>. It returns the connections that opened (nil where a dial
// failed), how many failed, and the first error.
func dialAll(ctx context.Context, o options, n int) ([]*websocket.Conn, int, error) {
	pool := &sync.Pool{}
	dialers := make([]*websocket.Dialer, o.sourceIPs)
	for i := range dialers {
		nd := &net.Dialer{Timeout: 10 * time.Second}
		if o.sourceIPs > 1 {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		dialers[i] = &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   4096,
			WriteBufferSize:  max(4096, o.size+14), // one write per message
			WriteBufferPool:  pool,                 // held only while writing: idle conns stay small
		}
	}
	conns := make([]*websocket.Conn, n)
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(o.dialers, n) {
		wg.Add(1)
		go func() { // owner: dialAll; ends when every index is taken
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, _, err := dialers[i%len(dialers)].DialContext(ctx, o.url, nil)
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		once.Do(func() { firstErr = err })
	}
	return conns, int(failed.Load()), firstErr
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}
