package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The load side uses gorilla/websocket: a synchronous Read and Write per connection and nothing
// running in between, so the load generator costs as little as it can and measures the server,
// not itself.

// dialer opens connections for one run, spread over the run's source addresses and, for a
// fanout against a cluster, over its nodes.
type dialer struct {
	urls    []string // connection i goes to urls[i%len(urls)]
	dialers []*websocket.Dialer
}

// newDialer prepares dialers for conns connections at once, whose messages are at most size
// bytes (one write per message), offering subprotocols. Connection i goes to the run's URL or,
// against a cluster, to the i-th of the nodes that take subscribers (round robin).
func newDialer(c *Config, conns, size int, subprotocols []string) *dialer {
	pool := &sync.Pool{} // write buffers are held only while writing: idle connections stay small
	n := c.SourceIPs
	if n == 0 {
		n = 1
		if allIPv4Loopback(c.urls()) {
			n = sourceIPsFor(conns)
		}
	}
	d := &dialer{urls: c.subscriberNodes(), dialers: make([]*websocket.Dialer, n)}
	for i := range d.dialers {
		nd := &net.Dialer{Timeout: c.ConnectTimeout}
		if n > 1 {
			nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		d.dialers[i] = &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: c.ConnectTimeout,
			ReadBufferSize:   4096,
			WriteBufferSize:  max(4096, size+14),
			WriteBufferPool:  pool,
			Subprotocols:     subprotocols,
		}
		if c.RootCAs != nil {
			d.dialers[i].TLSClientConfig = &tls.Config{RootCAs: c.RootCAs}
		}
	}
	return d
}

// dial opens connection number i (which picks its node and its source address).
func (d *dialer) dial(ctx context.Context, i int) (*websocket.Conn, error) {
	return d.dialURL(ctx, d.urls[i%len(d.urls)], i)
}

// dialURL opens connection number i (which picks its source address) to url.
func (d *dialer) dialURL(ctx context.Context, url string, i int) (*websocket.Conn, error) {
	c, resp, err := d.dialers[i%len(d.dialers)].DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	return c, err
}

// sourceIPsFor is how many local addresses n simultaneous connections to one server need: one
// address offers the ephemeral port range (ip_local_port_range), of which we use three quarters
// so that other programs keep some.
func sourceIPsFor(n int) int {
	ports := ephemeralPorts()
	per := max(ports*3/4, 1)
	return min(max((n+per-1)/per, 1), MaxSourceIPs)
}

// ephemeralPorts reads the size of the local port range, 28232 (Linux's default) if unknown.
func ephemeralPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && hi > lo {
				return hi - lo + 1
			}
		}
	}
	return 28232
}

// dialAll opens n connections, c.Dialers at a time, calling setup (if not nil) on each before it
// counts as open. It returns the connections (nil where a dial or setup failed), how many failed
// and the first error. opened counts connections as they open, for progress reports.
func dialAll(ctx context.Context, c *Config, d *dialer, n int, opened *atomic.Int64,
	setup func(i int, ws *websocket.Conn) error) ([]*websocket.Conn, int, error) {
	conns := make([]*websocket.Conn, n)
	var firstErr error
	var once sync.Once
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c.Dialers, n) {
		wg.Go(func() { // owner: dialAll; ends when every index is taken or ctx ends
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				ws, err := d.dial(ctx, i)
				if err == nil && setup != nil {
					if err = setup(i, ws); err != nil {
						_ = ws.Close()
					}
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					continue
				}
				conns[i] = ws
				opened.Add(1)
			}
		})
	}
	wg.Wait()
	open := int(countOpen(conns))
	if open < n && firstErr == nil {
		firstErr = ctx.Err() // dials never tried: the ramp timed out or the run was stopped
	}
	return conns, n - open, firstErr
}

func countOpen(conns []*websocket.Conn) int64 {
	var n int64
	for _, c := range conns {
		if c != nil {
			n++
		}
	}
	return n
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// closeGracefully sends a close frame (1000) and waits, up to timeout, for the server's answer
// (or the end of the connection), then closes the socket.
func closeGracefully(ws *websocket.Conn, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
	if err == nil {
		_ = ws.SetReadDeadline(deadline)
		for {
			if _, _, rerr := ws.NextReader(); rerr != nil {
				// The server's close frame, or the end of the connection after ours, ends the handshake;
				// a timeout or another close code does not.
				var ce *websocket.CloseError
				if errors.As(rerr, &ce) && ce.Code != websocket.CloseNormalClosure && ce.Code != websocket.CloseNoStatusReceived {
					err = rerr
				} else if ce == nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
					err = rerr
				}
				break
			}
		}
	}
	_ = ws.Close()
	return err
}
