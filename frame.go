package wsgate

import "encoding/binary"

// Frames the server sends are framed here, once, when a message is queued: a server frame has no
// mask (RFC 6455 §5.1), so its bytes are the same for every connection and never change. Sending
// then writes the queued buffer as it is, with no copy into the transport's framing buffer; only
// connections with permessage-deflate go through the transport, which compresses at write time.

// Frame opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxFrameHeader is the longest header of a server frame: no mask, a 64-bit length.
const maxFrameHeader = 10

// frameHeaderLen is the header length of a server frame with an n-byte payload.
func frameHeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// putFrameHeader writes the header of a final, unmasked frame with opcode op and an n-byte
// payload at the start of b, which has room for frameHeaderLen(n) bytes, and returns its length.
func putFrameHeader(b []byte, op byte, n int) int {
	b[0] = 0x80 | op
	switch {
	case n <= 125:
		b[1] = byte(n)
		return 2
	case n <= 0xffff:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		return 4
	}
	b[1] = 127
	binary.BigEndian.PutUint64(b[2:], uint64(n))
	return 10
}

// appendFrame appends a whole frame with opcode op and payload p to b.
func appendFrame(b []byte, op byte, p []byte) []byte {
	var h [maxFrameHeader]byte
	k := putFrameHeader(h[:], op, len(p))
	return append(append(b, h[:k]...), p...)
}

// frameLen is the length of a whole server frame with an n-byte payload.
func frameLen(n int) int { return frameHeaderLen(n) + n }

// frameMessage frames p as a message of type typ into b, of length frameLen(len(p)).
func frameMessage(b []byte, typ MessageType, p []byte) outMsg {
	k := putFrameHeader(b, byte(typ), len(p))
	copy(b[k:], p)
	return outMsg{typ: typ, hdr: uint8(k), frame: b}
}

// newFrame frames p as a message of type typ in a pooled buffer.
func newFrame(typ MessageType, p []byte) outMsg {
	buf := getBuf(frameLen(len(p)))
	m := frameMessage(*buf, typ, p)
	m.pooled = buf
	return m
}
