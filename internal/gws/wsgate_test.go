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
