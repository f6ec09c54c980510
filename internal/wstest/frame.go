package wstest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
)

// Opcodes of RFC 6455 §5.2, and the reserved bits as they sit in a frame's first byte.
const (
	OpCont   byte = 0x0
	OpText   byte = 0x1
	OpBinary byte = 0x2
	OpClose  byte = 0x8
	OpPing   byte = 0x9
	OpPong   byte = 0xA

	RSV1 byte = 0x40
	RSV2 byte = 0x20
	RSV3 byte = 0x10
)

// Frame is one WebSocket frame, valid or not, for tests that speak the protocol by hand: they
// send what no library would and read exactly what the server wrote. A client frame is masked
// unless Unmasked is set.
type Frame struct {
	Fin      bool
	RSV      byte // any of RSV1, RSV2, RSV3
	Opcode   byte
	Unmasked bool
	Payload  []byte
}

// MaskKey is the masking key of every frame Bytes encodes, for tests that build a header by hand.
var MaskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// Bytes encodes f with the shortest length encoding, masking the payload unless f.Unmasked.
func (f Frame) Bytes() []byte {
	b0 := f.Opcode&0x0f | f.RSV
	if f.Fin {
		b0 |= 0x80
	}
	var m byte = 0x80
	if f.Unmasked {
		m = 0
	}
	out := make([]byte, 0, 14+len(f.Payload))
	out = append(out, b0)
	switch n := len(f.Payload); {
	case n < 126:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = binary.BigEndian.AppendUint16(append(out, m|126), uint16(n))
	default:
		out = binary.BigEndian.AppendUint64(append(out, m|127), uint64(n))
	}
	if f.Unmasked {
		return append(out, f.Payload...)
	}
	out = append(out, MaskKey[:]...)
	for i, c := range f.Payload {
		out = append(out, c^MaskKey[i%4])
	}
	return out
}

// ErrServerClosed is ReadServerFrame's error at the end of the connection (EOF or reset).
var ErrServerClosed = errors.New("server closed the connection")

// MaxServerFrame bounds the payload ReadServerFrame accepts.
const MaxServerFrame = 16 << 20

// ReadServerFrame reads the next frame a server sent. It returns ErrServerClosed at the end of
// the connection, and an error for anything a server may not send: a masked frame, a truncated
// one, or one above MaxServerFrame.
func ReadServerFrame(r io.Reader) (Frame, error) {
	var h [10]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return Frame{}, ErrServerClosed
		}
		return Frame{}, err
	}
	f := Frame{Fin: h[0]&0x80 != 0, RSV: h[0] & 0x70, Opcode: h[0] & 0x0f}
	if h[1]&0x80 != 0 {
		return f, errors.New("server sent a masked frame (RFC 6455 §5.1)")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[2:4]); err != nil {
			return f, fmt.Errorf("truncated frame header: %w", err)
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(r, h[2:10]); err != nil {
			return f, fmt.Errorf("truncated frame header: %w", err)
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	if n > MaxServerFrame {
		return f, fmt.Errorf("server frame claims %d bytes", n)
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		return f, fmt.Errorf("truncated frame (opcode %#x, %d bytes): %w", f.Opcode, n, err)
	}
	return f, nil
}
