package wsgate

import (
	"math/bits"
	"sync"
)

// Buffers for queued messages come from size classes of powers of two, 64 B to 1 MiB; bigger ones
// are allocated and left to the GC.
const (
	minBufShift = 6
	maxBufShift = 20
)

var bufPools [maxBufShift - minBufShift + 1]sync.Pool

func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// getBuf returns a buffer of length n.
func getBuf(n int) *[]byte {
	k := bufClass(n)
	if k >= len(bufPools) {
		b := make([]byte, n)
		return &b
	}
	if v := bufPools[k].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(k+minBufShift))
	return &b
}

// putBuf returns b to its pool; b must not be used afterwards.
func putBuf(b *[]byte) {
	k := bufClass(cap(*b))
	if k >= len(bufPools) || cap(*b) != 1<<(k+minBufShift) {
		return
	}
	bufPools[k].Put(b)
}
