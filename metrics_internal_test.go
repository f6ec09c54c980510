package wsgate

import (
	"sync/atomic"
	"testing"
)

// What the per-message counters add to an echoed message: the message read (msgsIn), the bytes
// read and written (bytesIn, bytesOut) and the message written (msgsOut), on the connection's
// stripe, as read.go and wire.go count them. Serial: one connection's cost alone. Parallel: every
// core counting at once on connections spread over the stripes, the contended case. Compare the
// ns/op with the server CPU per echoed message in BENCHMARKS.md ("Metrics on against off").
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
}
