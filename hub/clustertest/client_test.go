package clustertest_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/protocol"
)

// frame is one message from the server, its fields left raw.
type frame map[string]json.RawMessage

func (f frame) str(key string) string {
	var s string
	if json.Unmarshal(f[key], &s) != nil {
		return string(f[key])
	}
	return s
}

func (f frame) String() string {
	b, _ := json.Marshal(f)
	return string(b)
}

// replyError returns the error of a reply, nil when it is a result.
func (f frame) replyError() *protocol.Error {
	if f["error"] == nil {
		return nil
	}
	var e protocol.Error
	if json.Unmarshal(f["error"], &e) != nil || e.Code == 0 {
		return &protocol.Error{Code: -1, Message: "undecodable error " + string(f["error"])}
	}
	return &e
}

// result decodes a reply's result into v; an error reply is an error.
func (f frame) result(v any) error {
	if e := f.replyError(); e != nil {
		return e
	}
	return json.Unmarshal(f["result"], v)
}

// wsClient is a wsgate.v1 client on gorilla/websocket, independent of the server's code. One
// goroutine uses it at a time; a goroutine of its own reads the socket into frames.
type wsClient struct {
	t      testing.TB
	ws     *websocket.Conn
	lastID uint64
	frames chan frame  // closed when the connection ends
	err    error       // why it ended; written before frames is closed
	held   []frame     // pushes read while waiting for a reply, to be taken first
	pongs  chan string // the payloads of the WebSocket pongs received
}

// dialWS connects to a node with the wsgate.v1 subprotocol; the connection is closed at the end
// of the test.
func dialWS(t testing.TB, url string) *wsClient {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		ws.Close()
		t.Fatalf("negotiated %q, not %s", ws.Subprotocol(), protocol.Subprotocol)
	}
	c := &wsClient{t: t, ws: ws, frames: make(chan frame, 1<<14), pongs: make(chan string, 16)}
	ws.SetPongHandler(func(p string) error {
		select {
		case c.pongs <- p:
		default:
		}
		return nil
	})
	done := make(chan struct{})
	go c.read(done) // owner: the client; ends when the socket does
	t.Cleanup(func() {
		ws.Close()
		<-done
	})
	return c
}

func (c *wsClient) read(done chan struct{}) {
	defer close(done)
	defer close(c.frames)
	for {
		_, p, err := c.ws.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		var f frame
		if err := json.Unmarshal(p, &f); err != nil {
			c.err = fmt.Errorf("the server sent invalid JSON %q", p)
			return
		}
		c.frames <- f
	}
}

// next returns the next frame, a held push first; an error if none comes within.
func (c *wsClient) next(within time.Duration) (frame, error) {
	if len(c.held) > 0 {
		f := c.held[0]
		c.held = c.held[1:]
		return f, nil
	}
	select {
	case f, ok := <-c.frames:
		if !ok {
			return nil, fmt.Errorf("connection ended: %w", c.err)
		}
		return f, nil
	case <-time.After(within):
		return nil, fmt.Errorf("no frame from the server within %v", within)
	}
}

// call sends req with the next id and returns its reply; pushes that come first are held for
// next. The reply must come within 10 s.
func (c *wsClient) call(req protocol.Request) (frame, error) {
	c.lastID++
	req.ID = c.lastID
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, raw); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return nil, fmt.Errorf("%s: connection ended: %w", raw, c.err)
			}
			if f["push"] != nil {
				c.held = append(c.held, f)
				continue
			}
			if f.str("id") != fmt.Sprint(req.ID) {
				return nil, fmt.Errorf("%s: reply %v", raw, f)
			}
			return f, nil
		case <-time.After(time.Until(deadline)):
			return nil, fmt.Errorf("%s: no reply within 10s", raw)
		}
	}
}

// mustCall is call, failing the test when no reply comes.
func (c *wsClient) mustCall(req protocol.Request) frame {
	c.t.Helper()
	f, err := c.call(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// subscribe subscribes to channel (from since when not nil) and returns the reply's result.
func (c *wsClient) subscribe(channel string, since *protocol.Position, events bool) protocol.SubscribeResult {
	c.t.Helper()
	var r protocol.SubscribeResult
	if err := c.mustCall(protocol.Request{Op: protocol.OpSubscribe, Channel: channel, Since: since, Events: events}).result(&r); err != nil {
		c.t.Fatalf("subscribe to %s: %v", channel, err)
	}
	return r
}

// publish publishes data on channel and returns the reply: a position or an error.
func (c *wsClient) publish(channel, data string) (protocol.Position, error) {
	f, err := c.call(protocol.Request{Op: protocol.OpPublish, Channel: channel, Data: json.RawMessage(data)})
	if err != nil {
		return protocol.Position{}, err
	}
	var pos protocol.Position
	return pos, f.result(&pos)
}

// ping makes a wsgate.v1 ping request and sends a WebSocket ping, and waits for both answers.
func (c *wsClient) ping(within time.Duration) error {
	payload := fmt.Sprint(time.Now().UnixNano())
	if err := c.ws.WriteControl(websocket.PingMessage, []byte(payload), time.Now().Add(within)); err != nil {
		return fmt.Errorf("WebSocket ping: %w", err)
	}
	f, err := c.call(protocol.Request{Op: protocol.OpPing})
	if err != nil {
		return err
	}
	if e := f.replyError(); e != nil {
		return fmt.Errorf("ping: %w", e)
	}
	timeout := time.After(within)
	for {
		select {
		case p := <-c.pongs:
			if p == payload {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no pong within %v", within)
		}
	}
}

// answeredFor pings c every 100 ms until d has passed since from, and returns the first failure.
func (c *wsClient) answeredFor(from time.Time, d time.Duration) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Since(from) < d {
		if err := c.ping(2 * time.Second); err != nil {
			return fmt.Errorf("%v after %v: %w", d, time.Since(from).Round(time.Millisecond), err)
		}
		<-tick.C
	}
	return nil
}
