package wsgate

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// What the per-message counters add to an echoed message: the message read (msgsIn), the bytes
// read and written (bytesIn, bytesOut, by frame type) and the message written (msgsOut), as read.go and wire.go
// count them, on each connection's own counters (conn) and, for comparison in the same run, on
// the 16 stripes shared by all connections that counted before (striped). serial: one
// connection's cost alone. parallel: every core counting back to back, the most contended case.
// paced-*: every core does about 2.5 µs of other work per message (a real echo costs the server
// 8-18 µs of CPU), with and without counting: the difference between paced-conn or
// paced-striped and paced-off is what counting costs at a message rate several times a real
// server's. Compare with the server CPU per echoed message in BENCHMARKS.md ("Metrics on against
// off").
func BenchmarkEchoCounters(b *testing.B) {
	countConn := func(c *connCounters) {
		c.bytesIn[bytesBinary].Add(38)
		countMessage(&c.msgsIn, Binary)
		c.bytesOut[bytesBinary].Add(34)
		countMessage(&c.msgsOut, Binary)
	}
	countStriped := func(m *stripedCounters, id uint64) {
		h := &m[id%uint64(len(m))]
		h.bytesIn.Add(38)
		countMessage(&h.msgsIn, Binary)
		h.bytesOut.Add(34)
		countMessage(&h.msgsOut, Binary)
	}
	// conns are real connections, so that each counts where a connection would: on its own
	// allocation, between the fields around it.
	conns := func(n int) []*Conn {
		cs := make([]*Conn, n)
		for i := range cs {
			cs[i] = new(Conn)
		}
		return cs
	}
	b.Run("serial/conn", func(b *testing.B) {
		c := new(Conn)
		for range b.N {
			countConn(&c.ctr)
		}
		if c.ctr.msgsIn[1].Load() != uint64(b.N) {
			b.Fatal("miscounted")
		}
	})
	b.Run("serial/striped", func(b *testing.B) {
		m := new(stripedCounters)
		for i := range b.N {
			countStriped(m, uint64(i))
		}
	})
	// Each goroutine echoes on 64 connections of its own, one message each in turn.
	b.Run("parallel/conn", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			cs := conns(64)
			for i := 0; pb.Next(); i++ {
				countConn(&cs[i&63].ctr)
			}
		})
	})
	b.Run("parallel/striped", func(b *testing.B) {
		m := new(stripedCounters)
		var ids atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			id := ids.Add(1)
			for pb.Next() {
				countStriped(m, id)
				id += 7 // another connection of this core's, likely another stripe
			}
		})
	})
	for _, mode := range []string{"off", "conn", "striped"} {
		b.Run("paced-"+mode, func(b *testing.B) {
			m := new(stripedCounters)
			var ids atomic.Uint64
			var sink atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				cs := conns(64)
				id := ids.Add(1)
				var work [256]uint64
				h := id
				for i := 0; pb.Next(); i++ {
					for range 8 { // about 2.5 µs of work that touches only this core's memory
						for j := range work {
							h = h*0x9E3779B97F4A7C15 + work[j]
							work[j] = h >> 7
						}
					}
					switch mode {
					case "conn":
						countConn(&cs[i&63].ctr)
					case "striped":
						countStriped(m, id)
					}
					id += 7
				}
				sink.Add(h)
			})
		})
	}
}

// stripedCounters are the counters as they were before each connection had its own: 16 stripes
// shared by every connection, 128 bytes each. BenchmarkEchoCounters compares them in the same run.
type stripedCounters [16]struct {
	msgsIn   [2]atomic.Uint64
	msgsOut  [2]atomic.Uint64
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	_        [128 - 6*8]byte
}

// BenchmarkMetricsScrape: what one Server.Metrics costs with n live connections, every one with
// counts, in a registry of real Conns (the scrape reads 80 bytes of each connection, a cache miss
// or two per connection).
func BenchmarkMetricsScrape(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, err := NewServer(nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				c := &Conn{srv: s, id: uint64(i + 1)}
				c.ctr.msgsIn[0].Add(1)
				c.ctr.bytesIn[bytesText].Add(7)
				s.shard(c.id).m[c.id] = c
			}
			b.ResetTimer()
			for range b.N {
				if m := s.Metrics(); m.MessagesReceivedText != uint64(n) || m.Connections != int64(n) {
					b.Fatalf("read %d messages on %d connections, want %d", m.MessagesReceivedText, m.Connections, n)
				}
			}
		})
	}
}

// TestConnStaysInItsSizeClass: a Conn is allocated in Go's 704-byte size class, the largest part
// of an idle connection's heap (BENCHMARKS.md, "Issue 13"). A field that takes it past 704 bytes
// costs every connection 64 bytes (the 768 class), not the field's size: the per-connection
// counters (48 bytes) fit only after two bools moved into groups of small fields, where they no
// longer take 8 bytes each, and the bytes by frame type (32 more) after the context moved behind
// a pointer and the subprotocol became an index. Make room the same way, or say in
// BENCHMARKS.md what a connection costs now and change this bound.
func TestConnStaysInItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 704 {
		t.Fatalf("a Conn is %d bytes, past the 704-byte size class", n)
	}
}

// TestLateCountsAreFolded: a connection ends while a write holds the wire (the rest of a queue
// written while it lingers, or a blocking write to a slow consumer, failing now that the socket
// is closed, which may still count what it wrote). unregister folds what was counted then, at
// once; forget, once the socket is closed, waits for the write in flight and folds what it
// counted since, so that it is in Metrics, not lost with the connection, and no total went back
// in between.
func TestLateCountsAreFolded(t *testing.T) {
	s, err := NewServer(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Conn{srv: s, id: 1}
	c.wire.c = c
	s.live.Add(1) // the place forget gives back
	s.shard(c.id).m[c.id] = c
	c.ctr.bytesOut[bytesBinary].Add(100)
	c.wire.wmu.Lock() // the write in flight
	s.unregister(c)
	if m := s.Metrics(); m.BytesSent != 100 || m.Connections != 0 {
		t.Fatalf("once unregistered: %d bytes sent, %d connections; want 100 and 0", m.BytesSent, m.Connections)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.ctr.bytesOut[bytesBinary].Add(20) // the last bytes the socket took
		c.ctr.msgsOut[1].Add(1)
		c.wire.wmu.Unlock()
	}()
	s.forget(c)
	if m := s.Metrics(); m.BytesSent != 120 || m.MessagesSentBinary != 1 {
		t.Fatalf("once forgotten: %d bytes and %d messages sent; want 120 and 1", m.BytesSent, m.MessagesSentBinary)
	}
	if st := c.Stats(); st.Sent != 1 {
		t.Fatalf("the connection's own Stats: %d sent, want 1", st.Sent)
	}
}
