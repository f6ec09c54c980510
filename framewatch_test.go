package wsgate

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// clientFrame encodes a masked frame (the mask is zero: frameWatch reads headers only).
func clientFrame(fin bool, op byte, n int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0}
	switch {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n <= 0xffff:
		h = binary.BigEndian.AppendUint16(append(h, 0x80|126), uint16(n))
	default:
		h = binary.BigEndian.AppendUint64(append(h, 0x80|127), uint64(n))
	}
	return append(append(h, 0, 0, 0, 0), make([]byte, n)...)
}

// watchStream is a message, then a fragmented one with control frames between its fragments and
// every length encoding, then an empty message.
func watchStream() (stream []byte, idle map[int]bool) {
	frames := []struct {
		f        []byte
		msgEnded bool // the frame ends its message (or is a control frame between messages)
	}{
		{clientFrame(true, byte(Text), 2), true},
		{clientFrame(true, opPing, 0), true},
		{clientFrame(false, byte(Binary), 200), false},
		{clientFrame(true, opPing, 125), false},
		{clientFrame(false, 0, 70000), false},
		{clientFrame(true, opPong, 0), false},
		{clientFrame(false, 0, 0), false},
		{clientFrame(true, 0, 126), true},
		{clientFrame(true, byte(Binary), 0), true},
	}
	idle = map[int]bool{0: true}
	for _, f := range frames {
		stream = append(stream, f.f...)
		if f.msgEnded {
			idle[len(stream)] = true
		}
	}
	return stream, idle
}

// frameWatch sees a message begin at its first byte and end with its last frame, however the
// bytes are cut into reads; control frames between fragments do not end it.
func TestFrameWatchFollowsMessages(t *testing.T) {
	stream, idle := watchStream()
	for _, k := range []int{1, 2, 3, 5, 7, 13, 14, 15, 100, 4096, len(stream)} {
		c := &Conn{srv: &Server{}}
		c.srv.clock.Store(42)
		for pos := 0; pos < len(stream); {
			end := min(pos+k, len(stream))
			c.inbound.observe(c, stream[pos:end])
			pos = end
			if got := c.msgStart.Load() == 0; got != idle[pos] {
				t.Fatalf("reads of %d bytes: after byte %d, between messages = %t, want %t", k, pos, got, idle[pos])
			}
		}
		if c.inbound.inFrame || c.inbound.fragmented {
			t.Fatalf("reads of %d bytes: the stream ended inside a frame or message", k)
		}
	}
}

// Liveness is recorded when a frame completes, not when a byte arrives.
func TestFrameWatchTouchesOnCompleteFrames(t *testing.T) {
	c := &Conn{srv: &Server{}}
	f := clientFrame(true, byte(Binary), 10)
	c.srv.clock.Store(1)
	c.inbound.observe(c, f[:len(f)-1])
	if c.lastRead.Load() != 0 {
		t.Fatal("a partial frame counted as liveness")
	}
	c.inbound.observe(c, f[len(f)-1:])
	if c.lastRead.Load() != 1 {
		t.Fatal("a complete frame did not count as liveness")
	}
}

// FuzzFrameWatch feeds arbitrary bytes in chunks: frameWatch must never panic, and a stream of
// valid frames must always end between messages.
func FuzzFrameWatch(f *testing.F) {
	// Small seeds: the mutator and the minimizer slow to a crawl on watchStream's 70 KB.
	var stream []byte
	for _, fr := range [][]byte{clientFrame(true, byte(Text), 2), clientFrame(false, byte(Binary), 130),
		clientFrame(true, opPing, 1), clientFrame(true, 0, 3)} {
		stream = append(stream, fr...)
	}
	f.Add(stream, uint8(1))
	f.Add(stream, uint8(9))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		c := &Conn{srv: &Server{}}
		c.srv.clock.Store(1)
		k := int(chunk) + 1
		for p := data; len(p) > 0; {
			n := min(k, len(p))
			c.inbound.observe(c, p[:n])
			p = p[n:]
		}
		if bytes.Equal(data, stream) && c.msgStart.Load() != 0 {
			t.Fatal("the valid stream ended inside a message")
		}
	})
}

// BenchmarkFrameWatch is what frameWatch adds to a read of 4 KiB of small frames (32-byte
// payloads, masked: 38 bytes a frame).
func BenchmarkFrameWatch(b *testing.B) {
	var chunk []byte
	for len(chunk)+38 <= 4096 {
		chunk = append(chunk, clientFrame(true, byte(Text), 32)...)
	}
	c := &Conn{srv: &Server{}}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		c.inbound.observe(c, chunk)
	}
}
