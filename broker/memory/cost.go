package memory

import "unsafe"

// What a stream holds, as MaxBytes counts it: what the Go runtime allocates for it.
var (
	slotSize   = int64(unsafe.Sizeof(entry{}))
	streamSize = allocSize(int64(unsafe.Sizeof(stream{}))) + mapSlot + allocSize(int64(len(newEpoch())))
)

// mapSlot is what a map entry costs (key header and pointer, 24 bytes, and a control byte) at the
// lowest load of a map that just doubled, 7/16.
const mapSlot = 64

// allocSize is what the runtime allocates for n bytes, from above: small objects round up to size
// classes that waste at most an eighth, large ones to whole pages.
func allocSize(n int64) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 32<<10:
		return (n + n/8 + 15) &^ 15
	default:
		return (n + 8<<10 - 1) &^ (8<<10 - 1)
	}
}

// streamCost is what a stream of this name holds besides its ring and payloads.
func streamCost(name string) int64 { return streamSize + allocSize(int64(len(name))) }

// ringCost is what a ring of k slots holds.
func ringCost(k int) int64 { return allocSize(int64(k) * slotSize) }

// entryCost is what a payload holds: its whole allocation, as far as its capacity shows.
func entryCost(data []byte) int64 { return allocSize(int64(cap(data))) }

// reserve adds cost (negative: frees) to the bytes held, unless that would pass MaxBytes.
func (b *Broker) reserve(cost int64) bool {
	for {
		cur := b.bytes.Load()
		if cost > 0 && cur+cost > b.opts.MaxBytes {
			return false
		}
		if b.bytes.CompareAndSwap(cur, cur+cost) {
			return true
		}
	}
}
