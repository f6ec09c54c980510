package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// pubsub is what fanout needs of a publish/subscribe protocol: joining a channel, publishing, and
// finding publications and replies in the server's frames. Both implementations are minimal and
// speak JSON text frames.
type pubsub interface {
	subprotocols() []string
	// hello does what a connection must do before anything else (Centrifugo: connect).
	hello(ws *websocket.Conn, deadline time.Time) error
	// subscribe joins channel and waits for the server's answer.
	subscribe(ws *websocket.Conn, channel string, deadline time.Time) error
	// appendPublish appends the frame publishing data (JSON) to channel, as request id.
	appendPublish(b []byte, id uint64, channel string, data []byte) []byte
	// publishID is the request id of the publication numbered seq (from 1).
	publishID(seq uint64) uint64
	// scan calls pub for each publication in frame and reply for each reply to a request;
	// it returns a frame to send back if the server asked for one (Centrifugo's ping).
	scan(frame []byte, pub func(p publication), reply func(id uint64, failed bool)) (answer []byte)
}

// publication is what fanout reads from a publication push: the offset the server gave it, and
// the sequence number and send time the publisher put in its data.
type publication struct {
	offset uint64
	seq    uint64
	sent   int64 // nanoseconds since the run's time base
	ok     bool  // seq and sent were found
}

func protoFor(p Protocol) pubsub {
	if p == ProtoCentrifugo {
		return centrifugo{}
	}
	return wsgateV1{}
}

// appendData appends the publication data the publisher sends: {"seq":N,"t":NANOS,"pad":"xxx"}.
func appendData(b []byte, seq uint64, sent int64, pad int) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, `,"pad":"`...)
	for range pad {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// parseData reads seq and t from a publication's data (or from the frame holding it: the keys
// are unique there).
func parseData(b []byte) (seq uint64, sent int64, ok bool) {
	s, ok1 := intField(b, `"seq":`)
	t, ok2 := intField(b, `"t":`)
	return uint64(s), t, ok1 && ok2 && s > 0
}

// intField finds key (with its quotes and colon) in b and parses the integer after it. It is a
// scanner, not a JSON parser: fanout uses it on frames whose shape it knows, where the key occurs
// once, to read 10,000s of frames a second without costing the measurement.
func intField(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	var v int64
	n := 0
	for ; n < len(b) && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + int64(b[n]-'0')
	}
	if n == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// await reads frames until the reply to request id, and fails if it is an error reply.
func await(p pubsub, ws *websocket.Conn, id uint64, what string, deadline time.Time) error {
	_ = ws.SetReadDeadline(deadline)
	defer ws.SetReadDeadline(time.Time{})
	for {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		var got, failed bool
		answer := p.scan(frame, func(publication) {}, func(rid uint64, f bool) {
			if rid == id {
				got, failed = true, f
			}
		})
		if answer != nil {
			if err := ws.WriteMessage(websocket.TextMessage, answer); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if got && failed {
			return fmt.Errorf("%s refused: %.200s", what, frame)
		}
		if got {
			return nil
		}
	}
}

func send(ws *websocket.Conn, frame []byte, deadline time.Time) error {
	_ = ws.SetWriteDeadline(deadline)
	defer ws.SetWriteDeadline(time.Time{})
	return ws.WriteMessage(websocket.TextMessage, frame)
}

// wsgateV1 is the wsgate.v1 subprotocol (docs/PROTOCOL.md).
type wsgateV1 struct{}

func (wsgateV1) subprotocols() []string { return []string{"wsgate.v1"} }

func (wsgateV1) hello(ws *websocket.Conn, _ time.Time) error {
	if ws.Subprotocol() != "wsgate.v1" {
		return errors.New("the server did not negotiate the wsgate.v1 subprotocol")
	}
	return nil
}

func (p wsgateV1) subscribe(ws *websocket.Conn, channel string, deadline time.Time) error {
	frame := []byte(`{"id":1,"op":"subscribe","channel":` + strconv.Quote(channel) + `}`)
	if err := send(ws, frame, deadline); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return await(p, ws, 1, "subscribe", deadline)
}

func (wsgateV1) publishID(seq uint64) uint64 { return seq }

func (wsgateV1) appendPublish(b []byte, id uint64, channel string, data []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"op":"publish","channel":`...)
	b = strconv.AppendQuote(b, channel)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

// scan: a push is {"push":"pub","channel":...,"epoch":...,"offset":N,"data":{...}}, a reply
// {"id":N,"result":...} or {"id":N,"error":...}; other pushes (ping, join, leave) are ignored.
func (wsgateV1) scan(frame []byte, pub func(publication), reply func(uint64, bool)) []byte {
	switch {
	case bytes.HasPrefix(frame, []byte(`{"push":"pub"`)):
		off, _ := intField(frame, `"offset":`)
		seq, sent, ok := parseData(frame)
		pub(publication{offset: uint64(off), seq: seq, sent: sent, ok: ok})
	case bytes.HasPrefix(frame, []byte(`{"id":`)):
		id, _ := intField(frame, `"id":`)
		reply(uint64(id), bytes.Contains(frame, []byte(`"error":`)))
	}
	return nil
}

// centrifugo is Centrifugo's JSON client protocol (v2) over WebSocket: commands
// {"id":N,"connect":{}}, {"id":N,"subscribe":{"channel":...}}, {"id":N,"publish":{...}}; replies
// {"id":N,"connect":{...}} or {"id":N,"error":{...}}; publications pushed as
// {"push":{"channel":...,"pub":{"data":...,"offset":N}}}. The server may put several of them in
// one frame, one per line, and pings with an empty {} that the client answers with {}.
type centrifugo struct{}

func (centrifugo) subprotocols() []string { return nil }

func (p centrifugo) hello(ws *websocket.Conn, deadline time.Time) error {
	if err := send(ws, []byte(`{"id":1,"connect":{"name":"wsgate-bench"}}`), deadline); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	return await(p, ws, 1, "connect", deadline)
}

func (p centrifugo) subscribe(ws *websocket.Conn, channel string, deadline time.Time) error {
	frame := []byte(`{"id":2,"subscribe":{"channel":` + strconv.Quote(channel) + `}}`)
	if err := send(ws, frame, deadline); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return await(p, ws, 2, "subscribe", deadline)
}

func (centrifugo) publishID(seq uint64) uint64 { return seq + 1 } // 1 is the connect command

func (centrifugo) appendPublish(b []byte, id uint64, channel string, data []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"publish":{"channel":`...)
	b = strconv.AppendQuote(b, channel)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, `}}`...)
}

func (centrifugo) scan(frame []byte, pub func(publication), reply func(uint64, bool)) []byte {
	var answer []byte
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
		case string(line) == "{}":
			answer = []byte("{}") // ping: pong
		case bytes.HasPrefix(line, []byte(`{"push":`)) && bytes.Contains(line, []byte(`"pub":{`)):
			off, _ := intField(line, `"offset":`)
			seq, sent, ok := parseData(line)
			pub(publication{offset: uint64(off), seq: seq, sent: sent, ok: ok})
		case bytes.HasPrefix(line, []byte(`{"id":`)):
			id, _ := intField(line, `"id":`)
			reply(uint64(id), bytes.Contains(line, []byte(`"error":`)))
		}
	}
	return answer
}
