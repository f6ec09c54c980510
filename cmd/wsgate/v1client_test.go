package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/protocol"
)

// v1Client is a wsgate.v1 client for tests that run servers as processes: requests wait for
// their reply, pushes queue on pubs and presence.
type v1Client struct {
	ws *websocket.Conn

	wmu sync.Mutex // one writer at a time (gorilla/websocket)

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan v1Reply

	pubs     chan v1Push // "pub" pushes, in arrival order
	presence chan v1Push // "presence" pushes
	done     chan struct{}
	err      error // why the reader stopped; read after done
}

type v1Reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type v1Push struct {
	Push    string          `json:"push"`
	Channel string          `json:"channel"`
	Epoch   string          `json:"epoch"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
	Join    []v1Member      `json:"join"`
	Leave   []v1Member      `json:"leave"`
}

type v1Member struct {
	Conn string `json:"conn"`
	User string `json:"user"`
}

// v1Position is a channel's position as the protocol writes it.
type v1Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// v1Pub is a publication in a subscribe or history reply.
type v1Pub struct {
	Offset uint64          `json:"offset"`
	Data   json.RawMessage `json:"data"`
}

// v1Result is the result of subscribe, history and publish.
type v1Result struct {
	Epoch        string  `json:"epoch"`
	Offset       uint64  `json:"offset"`
	Recovered    bool    `json:"recovered"`
	Complete     bool    `json:"complete"`
	More         bool    `json:"more"`
	Publications []v1Pub `json:"publications"`
	Total        int     `json:"total"`
	Clients      []v1Member
	Next         string `json:"next"`
}

// v1Error is a reply's error.
type v1Error struct {
	Code    int
	Message string
}

func (e *v1Error) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Message) }

// dialV1 connects to the wsgate.v1 endpoint of the server at addr.
func dialV1(addr string) (*v1Client, error) {
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, err
	}
	c := &v1Client{ws: ws, waiting: map[int]chan v1Reply{}, pubs: make(chan v1Push, 4096),
		presence: make(chan v1Push, 4096), done: make(chan struct{})}
	go c.read() // owner: the client; ends when the connection closes
	return c, nil
}

func (c *v1Client) read() {
	defer close(c.done)
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		var head struct {
			ID   int    `json:"id"`
			Push string `json:"push"`
		}
		if err := json.Unmarshal(msg, &head); err != nil {
			c.err = fmt.Errorf("not JSON: %q", msg)
			return
		}
		switch head.Push {
		case "":
			var r v1Reply
			_ = json.Unmarshal(msg, &r)
			c.mu.Lock()
			ch := c.waiting[head.ID]
			delete(c.waiting, head.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		case "pub", "gap":
			var p v1Push
			_ = json.Unmarshal(msg, &p)
			select {
			case c.pubs <- p:
			default:
				c.err = errors.New("test client: pubs queue full")
				c.ws.Close()
				return
			}
		case "presence":
			var p v1Push
			_ = json.Unmarshal(msg, &p)
			select {
			case c.presence <- p:
			default: // a test that does not read presence pushes does not care
			}
		}
	}
}

// call sends req (an object without id) and waits up to timeout for its reply.
func (c *v1Client) call(req map[string]any, timeout time.Duration) (*v1Result, error) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan v1Reply, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	req["id"] = id
	b, _ := json.Marshal(req)
	c.wmu.Lock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(timeout))
	err := c.ws.WriteMessage(websocket.TextMessage, b)
	c.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return nil, &v1Error{r.Error.Code, r.Error.Message}
		}
		var res v1Result
		if err := json.Unmarshal(r.Result, &res); err != nil {
			return nil, fmt.Errorf("reply %s: %w", r.Result, err)
		}
		return &res, nil
	case <-c.done:
		return nil, fmt.Errorf("connection lost: %w", c.err)
	case <-time.After(timeout):
		return nil, fmt.Errorf("no reply to %s within %v", b, timeout)
	}
}

func (c *v1Client) subscribe(channel string, since *v1Position, presence bool) (*v1Result, error) {
	req := map[string]any{"op": "subscribe", "channel": channel}
	if since != nil {
		req["since"] = since
	}
	if presence {
		req["presence"] = true
	}
	return c.call(req, 10*time.Second)
}

func (c *v1Client) publish(channel string, data any) (*v1Result, error) {
	return c.call(map[string]any{"op": "publish", "channel": channel, "data": data}, 10*time.Second)
}

func (c *v1Client) history(channel string, since *v1Position, limit int) (*v1Result, error) {
	req := map[string]any{"op": "history", "channel": channel, "limit": limit}
	if since != nil {
		req["since"] = since
	}
	return c.call(req, 10*time.Second)
}

// nextPub waits up to timeout for the next pub push.
func (c *v1Client) nextPub(timeout time.Duration) (v1Push, error) {
	select {
	case p := <-c.pubs:
		return p, nil
	case <-c.done:
		select {
		case p := <-c.pubs:
			return p, nil
		default:
		}
		return v1Push{}, fmt.Errorf("connection lost: %w", c.err)
	case <-time.After(timeout):
		return v1Push{}, fmt.Errorf("no publication within %v", timeout)
	}
}

func (c *v1Client) close() {
	c.ws.Close()
	<-c.done
}
