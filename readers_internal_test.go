package wsgate

import "testing"

// TestReaderQueueStaysBounded: one reader and connections that are readable again each time the
// reader moves on, so that the queue never empties (sustained overload, readers going round):
// the queue's array stays bounded by what waits, not by every wake-up since it last emptied, and
// the order is kept.
func TestReaderQueueStaysBounded(t *testing.T) {
	s := &Server{}
	s.readers.max = 1
	s.readers.running = 1 // the one reader is busy
	conns := []*Conn{{id: 1}, {id: 2}, {id: 3}}
	for _, c := range conns[1:] {
		s.startReader(c) // they wait
	}
	want := uint64(2)
	for range 1_000_000 {
		c := s.nextWoken() // the reader's connection parked: it takes the oldest waiting one
		if c.id != want {
			t.Fatalf("took connection %d, want %d: the queue lost its order", c.id, want)
		}
		want = want%3 + 1
		s.startReader(conns[(c.id+1)%3]) // the one it left is readable again, and waits
	}
	p := &s.readers
	if w := p.waiting.Load(); w != 2 || len(p.queue)-p.head != 2 {
		t.Fatalf("%d waiting, %d in the queue; want 2", w, len(p.queue)-p.head)
	}
	if cap(p.queue) > 256 {
		t.Errorf("the queue's array holds %d slots for 2 waiting connections", cap(p.queue))
	}
}
