package wsgate

import (
	"sync"
	"sync/atomic"
)

// readerPool bounds the reader goroutines of woken connections (Config.MaxReaders;
// docs/RUNTIME.md, "The reader pool"). unpark hands a woken connection to startReader: it gets a
// reader at once while fewer than max run, else it waits in the queue. A reader whose connection
// parks again takes the next waiting connection, in order, or ends and frees its place; one whose
// connection ends hands its place on to a new reader before it lingers (up to CloseTimeout),
// since lingering reads nothing that another connection waits for.
//
// While a connection waits, each reader parks its connection after every message (yieldReader)
// rather than after ParkAfter of silence: the readers then go round the readable connections, as
// the workers of an epoll server do, and waiting is bounded by a message's handling times the
// queue's length over max, not by the talk of the connections that have readers.
type readerPool struct {
	max     int // Config.MaxReaders; <= 0: no bound, no queue
	mu      sync.Mutex
	running int     // readers counted against max (under mu)
	queue   []*Conn // woken connections waiting for a reader, oldest first (under mu)
	head    int     // queue[head:] waits
	waiting atomic.Int64
	waited  atomic.Uint64 // wake-ups that had to wait
}

// startReader gives c, just woken (its park CAS won), a reader: a new goroutine, or a place in
// the queue when max readers run.
func (s *Server) startReader(c *Conn) {
	p := &s.readers
	if p.max > 0 {
		p.mu.Lock()
		if p.running >= p.max {
			p.queue = append(p.queue, c)
			p.waiting.Add(1)
			p.waited.Add(1)
			p.mu.Unlock()
			return
		}
		p.running++
		p.mu.Unlock()
	}
	s.goroutines.Add(1)
	go s.readWoken(c, false) // owner: the Server; counted in goroutines, ends when the queue is empty
}

// readWoken is a pooled reader: it reads c until c parks, then the next waiting connection, until
// none waits. A connection that ends is finished here, after the place has been handed on.
// waited says c came from the queue.
func (s *Server) readWoken(c *Conn, waited bool) {
	defer s.goroutines.Done()
	for c != nil {
		parked := c.resume(waited)
		next := s.nextWoken()
		if !parked {
			if next != nil { // the place goes to a reader of its own: this one lingers
				s.goroutines.Add(1)
				go s.readWoken(next, true) // owner: the Server, as above
			}
			c.end()
			return
		}
		c, waited = next, true
	}
}

// nextWoken takes the oldest waiting connection, keeping the caller's place for it, or frees the
// place when none waits (nil).
func (s *Server) nextWoken() *Conn {
	p := &s.readers
	if p.max <= 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head == len(p.queue) {
		p.running--
		p.reset()
		return nil
	}
	c := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	p.waiting.Add(-1)
	switch {
	case p.head == len(p.queue):
		p.reset()
	case p.head >= 64 && p.head*2 >= len(p.queue):
		// Under sustained overload the queue may never empty (readers park their connections
		// after each message, and those come back): move what waits to the front, so that the
		// array is bounded by what waits, not by every wake-up since it last emptied. Each
		// entry moves at most once per time the queue halves: amortised constant.
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	return c
}

// reset empties the queue, keeping its array unless a storm grew it beyond max (under mu).
func (p *readerPool) reset() {
	if cap(p.queue) > p.max {
		p.queue = nil
	} else {
		p.queue = p.queue[:0]
	}
	p.head = 0
}

// yieldReader asks the reader to park c at the next frame boundary, after a message, because
// another woken connection waits for a reader (readerPool). It parks only if nothing more of a
// frame has arrived; otherwise it reads on, and asks again after the next message.
func (c *Conn) yieldReader() {
	if !c.parkable() {
		return
	}
	c.mu.Lock()
	c.askParkLocked()
	c.mu.Unlock()
}
