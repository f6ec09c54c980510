package wsgate

import (
	"sync/atomic"
	"testing"
)

// What the per-message counters add to an echoed message: the message read (msgsIn), the bytes
// read and written (bytesIn, bytesOut) and the message written (msgsOut), on the connection's
// stripe, as read.go and wire.go count them. serial: one connection's cost alone. parallel: every
// core counting back to back on connections spread over the stripes, the most contended case.
// paced-on and paced-off: every core does about 2.5 µs of other work per message (a real echo costs
// the server 8-18 µs of CPU), with and without counting: their difference is what the counters
// cost at a message rate several times a real server's, where another core takes a stripe's line
// only now and then. Compare with the server CPU per echoed message in BENCHMARKS.md ("Metrics on
// against off").
func BenchmarkEchoCounters(b *testing.B) {
	count := func(m *serverMetrics, id uint64) {
		h := m.hotOf(id)
		h.bytesIn.Add(38)
		countMessage(&h.msgsIn, Binary)
		h.bytesOut.Add(34)
		countMessage(&h.msgsOut, Binary)
	}
	b.Run("serial", func(b *testing.B) {
		m := new(serverMetrics)
		for i := range b.N {
			count(m, uint64(i))
		}
		if got := m.hot[0].msgsIn[1].Load(); got == 0 {
			b.Fatal("nothing counted")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		m := new(serverMetrics)
		var ids atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			id := ids.Add(1)
			for pb.Next() {
				count(m, id)
				id += 7 // another connection of this core's, likely another stripe
			}
		})
	})
	for _, on := range []bool{true, false} {
		name := "paced-off"
		if on {
			name = "paced-on"
		}
		b.Run(name, func(b *testing.B) {
			m := new(serverMetrics)
			var ids atomic.Uint64
			var sink atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				id := ids.Add(1)
				var work [256]uint64
				h := id
				for pb.Next() {
					for range 8 { // about 2.5 µs of work that touches only this core's memory
						for j := range work {
							h = h*0x9E3779B97F4A7C15 + work[j]
							work[j] = h >> 7
						}
					}
					if on {
						count(m, id)
					}
					id += 7
				}
				sink.Add(h)
			})
		})
	}
}
