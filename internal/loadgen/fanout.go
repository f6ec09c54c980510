package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// subscriber is one subscribed connection: which publications it got, and how.
type subscriber struct {
	idx        int
	node       *nodeTally // its node's figures; nil against one server
	ws         *websocket.Conn
	seen       []uint64 // bitmap of sequence numbers received
	got        uint64   // distinct publications received
	dups       uint64
	outOfOrder uint64
	gaps       uint64 // offsets skipped
	lastOffset uint64
	maxSeq     uint64
	bad        uint64 // publications without a readable seq and timestamp
	err        error  // how its connection ended, if before the run did
}

// Fanout subscribes c.Subscribers connections to c.Channel, then publishes c.Rate publications
// per second for c.Duration from one more connection, each stamped with its sequence number and
// send time; it waits up to c.Drain for the last deliveries and reports delivery latency and what
// each subscriber missed, got twice or got out of order.
func Fanout(ctx context.Context, c Config) (*Result, error) {
	c, err := prepare(c, ModeFanout)
	if err != nil {
		return nil, err
	}
	p := protoFor(c.Protocol)
	m := newMeter(&c, "deliveries", c.Subscribers)
	m.start()
	res := &Result{Mode: ModeFanout, URL: c.URL, Started: m.begun, Conns: c.Subscribers, Size: c.Size,
		Rate: c.Rate, Protocol: string(c.Protocol)}
	total := uint64(math.Floor(c.Rate * c.Duration.Seconds())) // publications to send
	if total == 0 {
		total = 1
	}
	d := newDialer(&c, c.Subscribers+1, c.Size+256, p.subprotocols())
	setup := func(_ int, ws *websocket.Conn) error {
		deadline := time.Now().Add(c.ConnectTimeout)
		if err := p.hello(ws, deadline); err != nil {
			return err
		}
		return p.subscribe(ws, c.Channel, deadline)
	}
	rctx, cancel := context.WithTimeout(ctx, c.RampTimeout)
	conns, failed, err := dialAll(rctx, &c, d, c.Subscribers, &m.conns, setup)
	cancel()
	res.DialErrors = failed
	res.noteError(wrapDial(err))
	defer closeAll(conns)
	pubWS, err := d.dialURL(ctx, c.URL, c.Subscribers)
	if err == nil {
		if err = p.hello(pubWS, time.Now().Add(c.ConnectTimeout)); err != nil {
			_ = pubWS.Close()
		}
	}
	if err != nil {
		res.Series = m.finish()
		return nil, fmt.Errorf("publisher: %w", err)
	}
	defer pubWS.Close()

	nodes := newNodeTally(&c)
	subs := make([]*subscriber, 0, len(conns))
	for i, ws := range conns {
		if ws != nil {
			subs = append(subs, &subscriber{idx: i, node: nodes.of(i), ws: ws, seen: make([]uint64, total/64+1)})
		}
	}
	base := time.Now() // publishers' and subscribers' clock: monotonic nanoseconds since base
	var delivered atomic.Uint64
	var lastDelivery atomic.Int64 // nanoseconds since base
	var closing atomic.Bool
	var wg sync.WaitGroup
	stopAt := base.Add(c.Duration + c.Drain + c.ConnectTimeout) // bound on every read
	for _, s := range subs {
		wg.Go(func() { // owner: Fanout; ends when closeAll closes s.ws, or by stopAt
			s.read(p, base, total, stopAt, m, &delivered, &lastDelivery, &closing)
		})
	}

	m.setPhase("running")
	pub := &publisher{ws: pubWS, p: p, total: total, rejected: make([]bool, total+1)}
	var pwg sync.WaitGroup
	pwg.Go(func() { pub.readReplies(stopAt) }) // owner: Fanout; ends when pubWS closes or by stopAt
	pubErr := pub.run(ctx, &c, base)
	published := min(time.Since(base), c.Duration)
	res.Published = pub.sent

	// Drain: wait until every subscriber has every publication the server took, or c.Drain.
	m.setPhase("draining")
	drainEnd := time.Now().Add(c.Drain)
	for ctx.Err() == nil && time.Now().Before(drainEnd) {
		want := (pub.sent - pub.refused()) * uint64(len(subs))
		if delivered.Load() >= want && pub.replies.Load() >= pub.sent {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	closing.Store(true)
	_ = pubWS.Close()
	pwg.Wait()
	closeAll(conns)
	wg.Wait()
	res.Series = m.finish()
	// The rate is over the time the deliveries took: from the first publication to the last
	// delivery, or to the end of publishing if that came later. A server that falls behind
	// delivers in the drain, and its rate says so.
	res.Seconds = max(published, time.Duration(lastDelivery.Load())).Seconds()

	res.PublishErrors = pub.refused()
	res.noteError(pubErr)
	if pub.firstRefusal != "" {
		res.noteError(errors.New("publish refused: " + pub.firstRefusal))
	}
	counts := make([]uint64, c.Subscribers)
	lost := func(s *subscriber) (n uint64) {
		for seq := uint64(1); seq <= pub.sent; seq++ {
			if !pub.rejected[seq] && s.seen[seq/64]&(1<<(seq%64)) == 0 {
				n++
			}
		}
		return n
	}
	for _, s := range subs {
		counts[s.idx] = s.got
		l := lost(s)
		res.Lost += l
		nodes.book(s, l)
		res.Messages += s.got
		res.Duplicates += s.dups
		res.OutOfOrder += s.outOfOrder
		res.OffsetGaps += s.gaps
		res.Mismatches += s.bad
		if s.err != nil {
			res.IOErrors++
			res.noteError(s.err)
		}
	}
	if pubErr != nil {
		res.IOErrors++
	}
	res.Errors = uint64(res.DialErrors) + res.IOErrors + res.Mismatches + res.PublishErrors +
		res.Lost + res.Duplicates + res.OutOfOrder + res.OffsetGaps
	if res.Seconds > 0 {
		res.MsgsPerSec = float64(res.Messages) / res.Seconds
	}
	res.fillLatency(m.rec)
	res.fillFairness(counts)
	res.Nodes = nodes.results()
	return res, nil
}

// read takes the subscriber's frames until its connection is closed, booking every publication.
func (s *subscriber) read(p pubsub, base time.Time, total uint64, stopAt time.Time, m *meter,
	delivered *atomic.Uint64, lastDelivery *atomic.Int64, closing *atomic.Bool) {
	_ = s.ws.SetReadDeadline(stopAt)
	book := func(pb publication) {
		now := time.Since(base).Nanoseconds()
		if !pb.ok || pb.seq > total {
			s.bad++
			m.errs.Add(1)
			return
		}
		if s.lastOffset != 0 && pb.offset > s.lastOffset+1 {
			s.gaps += pb.offset - s.lastOffset - 1
		}
		if pb.offset > s.lastOffset {
			s.lastOffset = pb.offset
		}
		w, bit := pb.seq/64, uint64(1)<<(pb.seq%64)
		if s.seen[w]&bit != 0 {
			s.dups++
			m.errs.Add(1)
			return
		}
		s.seen[w] |= bit
		if pb.seq < s.maxSeq {
			s.outOfOrder++
			m.errs.Add(1)
		}
		s.maxSeq = max(s.maxSeq, pb.seq)
		s.got++
		delivered.Add(1)
		m.count.Add(1)
		m.rec.Record(s.idx, time.Duration(now-pb.sent))
		s.node.record(time.Duration(now - pb.sent))
		storeMax(lastDelivery, now)
	}
	for {
		_, r, err := s.ws.NextReader()
		if err == nil {
			var frame []byte
			frame, err = io.ReadAll(r)
			if err == nil {
				if answer := p.scan(frame, book, func(uint64, bool) {}); answer != nil {
					err = s.ws.WriteMessage(websocket.TextMessage, answer)
				}
			}
		}
		if err != nil {
			if !closing.Load() {
				s.err = fmt.Errorf("subscriber %d: %w", s.idx, err)
				m.conns.Add(-1)
				m.errs.Add(1)
			}
			return
		}
	}
}

// storeMax raises a to v, if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// publisher sends the publications and books the server's replies.
type publisher struct {
	ws           *websocket.Conn
	wmu          sync.Mutex // one writer at a time: run, and readReplies answering pings
	p            pubsub
	total        uint64
	sent         uint64
	replies      atomic.Uint64
	mu           sync.Mutex // guards rejected, nRejected, firstRefusal
	rejected     []bool     // by sequence number
	nRejected    uint64
	firstRefusal string
}

// run publishes total publications at c.Rate per second from base: publication k is due at
// base + (k-1)/rate, and goes out as soon as it is due (late ones are not skipped).
func (pb *publisher) run(ctx context.Context, c *Config, base time.Time) error {
	interval := time.Duration(float64(time.Second) / c.Rate)
	var data, frame []byte
	t := time.NewTimer(0)
	defer t.Stop()
	for seq := uint64(1); seq <= pb.total; seq++ {
		if d := time.Until(base.Add(time.Duration(seq-1) * interval)); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		data = appendData(data[:0], seq, time.Since(base).Nanoseconds(), c.Size)
		frame = pb.p.appendPublish(frame[:0], pb.p.publishID(seq), c.Channel, data)
		if err := pb.write(frame, time.Now().Add(c.ConnectTimeout)); err != nil {
			return fmt.Errorf("publisher: %w", err)
		}
		pb.sent = seq
	}
	return nil
}

// readReplies books the replies to publications until the connection closes.
func (pb *publisher) readReplies(stopAt time.Time) {
	_ = pb.ws.SetReadDeadline(stopAt)
	for {
		_, frame, err := pb.ws.ReadMessage()
		if err != nil {
			return
		}
		answer := pb.p.scan(frame, func(publication) {}, func(id uint64, failed bool) {
			pb.replies.Add(1)
			if !failed {
				return
			}
			pb.mu.Lock()
			defer pb.mu.Unlock()
			for seq := uint64(1); seq <= pb.total; seq++ { // ids map back to sequence numbers
				if pb.p.publishID(seq) == id {
					pb.rejected[seq] = true
					pb.nRejected++
					break
				}
			}
			if pb.firstRefusal == "" {
				pb.firstRefusal = fmt.Sprintf("%.200s", frame)
			}
		})
		if answer != nil {
			_ = pb.write(answer, time.Now().Add(10*time.Second))
		}
	}
}

func (pb *publisher) write(frame []byte, deadline time.Time) error {
	pb.wmu.Lock()
	defer pb.wmu.Unlock()
	_ = pb.ws.SetWriteDeadline(deadline)
	return pb.ws.WriteMessage(websocket.TextMessage, frame)
}

func (pb *publisher) refused() uint64 {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.nRejected
}
