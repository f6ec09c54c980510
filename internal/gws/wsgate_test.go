package gws

// wsgate's own tests of its patches to this copy, with the standard library only (upstream's tests,
// which use testify, travel in patches/; see PATCHES.md). scripts/test also runs them with
// GOARCH=386, where int has 32 bits.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os/exec"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/gws/internal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// header64 is the header of a masked binary frame with a 64-bit payload length n.
func header64(n uint64) []byte {
	h := binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, n)
	return append(h, 1, 2, 3, 4)
}

// Patch 1: a 64-bit length is refused before it becomes an int: 1002 when its most significant
// bit is set (RFC 6455 §5.2), 1009 when it does not fit in int (32-bit platforms); never negative.
func TestParseRefusesLengthsThatDoNotFit(t *testing.T) {
	for _, n := range []uint64{1 << 16, 0x7fffffff, 0x80000000, 0xfffffff0, math.MaxInt64, 1 << 63, math.MaxUint64} {
		var fh frameHeader
		got, err := fh.Parse(bytes.NewReader(header64(n)))
		switch {
		case n>>63 != 0:
			if !errors.Is(err, internal.CloseProtocolError) {
				t.Errorf("length %#x: got %d, %v; want 1002", n, got, err)
			}
		case n > math.MaxInt:
			if !errors.Is(err, internal.CloseMessageTooLarge) {
				t.Errorf("length %#x: got %d, %v; want 1009", n, got, err)
			}
		case err != nil || got < 0 || uint64(got) != n:
			t.Errorf("length %#x: got %d, %v", n, got, err)
		}
	}
}

// Patch 1, where it mattered: a frame announcing 0xfffffff0 bytes is too big for the read limit on
// every platform; unpatched, on 386 the length was -16 and the read loop panicked.
func TestReadMessageRefusesAHugeLength(t *testing.T) {
	c := &Conn{isServer: true, config: &Config{ReadMaxPayloadSize: 64 << 10},
		br: bufio.NewReader(bytes.NewReader(header64(0xfffffff0)))}
	if err := c.readMessage(); !errors.Is(err, internal.CloseMessageTooLarge) {
		t.Fatalf("readMessage: %v, want 1009", err)
	}
}

// The copy is upstream plus the patches in patches/, nothing else: patches/check.sh rebuilds it
// from the module cache and compares (see PATCHES.md).
func TestCopyIsUpstreamPlusPatches(t *testing.T) {
	if testing.Short() {
		t.Skip("applies the patches to upstream")
	}
	for _, tool := range []string{"bash", "git", "diff"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("check.sh needs %s", tool)
		}
	}
	out, err := exec.CommandContext(t.Context(), "bash", "patches/check.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("patches/check.sh: %v\n%s", err, out)
	}
}

// TestPayloadBufferIsBounded (patches 12 and 13): for every announced length up to the read limit,
// on 32 and 64 bits, the buffer readPayload holds (the pool's size class, or the exact size past
// the largest) is at least what it asked for, at most 16 times what was received plus
// payloadChunk, and has room for more than what was received, so that the read loop progresses.
// Before patch 13 a length above 2 GiB came back from the pool as 128 bytes, and the loop spun.
func TestPayloadBufferIsBounded(t *testing.T) {
	sizes := []int{1, 100, 4087, 4096, 4097, 65536, 65545, 1 << 20, math.MaxInt32 - len(flateTail)}
	if math.MaxInt > math.MaxInt32 {
		for _, n := range []int64{1 << 31, 3 << 30, 5 << 30} {
			sizes = append(sizes, int(n))
		}
	}
	for _, n := range sizes {
		for _, got := range []int{0, 1, 3900, 4082, 65536, 256 << 20} {
			if got > n {
				continue
			}
			for _, tail := range []int{0, len(flateTail)} {
				size := payloadRoom(n, got, tail)
				held := binaryPool.Cap(size)
				bound := 16*int64(got) + payloadChunk // in int64: 16 × 256 MiB overflows an int of 32 bits
				if held < size || int64(held) > bound || got < n && size-tail <= got {
					t.Errorf("n %d, %d received, tail %d: asks %d, holds %d; want at least that, at most %d, room beyond %d",
						n, got, tail, size, held, bound, got)
				}
			}
		}
	}
}
