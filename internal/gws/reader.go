package gws

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"unsafe"

	"github.com/wsgate/wsgate/internal/gws/internal"
)

// 检查掩码设置是否符合 RFC6455 协议。
// Checks if the mask setting complies with the RFC6455 protocol.
func (c *Conn) checkMask(enabled bool) error {
	// RFC6455: 所有从客户端发送到服务器的帧都必须设置掩码位为 1。
	// RFC6455: All frames sent from client to server must have the mask bit set to 1.
	if (c.isServer && !enabled) || (!c.isServer && enabled) {
		return internal.CloseProtocolError
	}
	return nil
}

// 读取控制帧
// Reads a control frame
func (c *Conn) readControl() error {
	// RFC6455: 控制帧本身不能被分片。
	// RFC6455: Control frames themselves MUST NOT be fragmented.
	if !c.fh.GetFIN() {
		return internal.CloseProtocolError
	}

	// RFC6455: 所有控制帧的有效载荷长度必须为 125 字节或更少，并且不能被分片。
	// RFC6455: All control frames MUST have a payload length of 125 bytes or fewer and MUST NOT be fragmented.
	var n = c.fh.GetLengthCode()
	if n > internal.ThresholdV1 {
		return internal.CloseProtocolError
	}

	// 不回收小块 buffer，控制帧一般 payload 长度为 0
	// Do not recycle small buffers, control frames generally have a payload length of 0
	var payload []byte
	if n > 0 {
		payload = make([]byte, n)
		if err := internal.ReadN(c.br, payload); err != nil {
			return err
		}
		if maskEnabled := c.fh.GetMask(); maskEnabled {
			internal.MaskXOR(payload, c.fh.GetMaskKey())
		}
	}

	var opcode = c.fh.GetOpcode()
	switch opcode {
	case OpcodePing:
		c.handler.OnPing(c, payload)
		return nil
	case OpcodePong:
		c.handler.OnPong(c, payload)
		return nil
	case OpcodeCloseConnection:
		return c.emitClose(bytes.NewBuffer(payload))
	default:
		var err = fmt.Errorf("gws: unexpected opcode %d", opcode)
		return internal.NewError(internal.CloseProtocolError, err)
	}
}

// 读取消息
// Reads a message
func (c *Conn) readMessage() error {
	// 解析帧头并获取内容长度
	// Parse the frame header and get the content length
	contentLength, err := c.fh.Parse(c.br)
	if err != nil {
		return err
	}
	if contentLength > c.config.ReadMaxPayloadSize {
		return internal.CloseMessageTooLarge
	}

	// RSV1, RSV2, RSV3: 每个占 1 位
	// 必须为 0，除非协商的扩展定义了非零值的含义。
	// 如果接收到非零值且没有协商的扩展定义该非零值的含义，接收端点必须关闭 WebSocket 连接。
	// RSV1, RSV2, RSV3: 1 bit each
	// MUST be 0 unless an extension is negotiated that defines meanings for non-zero values.
	// If a nonzero value is received and none of the negotiated extensions defines the meaning of such a nonzero value,
	// the receiving endpoint MUST _Fail the WebSocket Connection_.
	// RSV2 和 RSV3 没有扩展定义; RSV1 只能出现在协商了 permessage-deflate 的数据消息的第一帧 (RFC7692 §6).
	// No extension defines RSV2 or RSV3, and RSV1 is valid only on the first frame of a data message
	// of a connection that negotiated permessage-deflate (RFC7692 §6).
	if op := c.fh.GetOpcode(); c.fh.GetRSV2() || c.fh.GetRSV3() ||
		c.fh.GetRSV1() && (!c.pd.Enabled || !op.isDataFrame() || op == OpcodeContinuation) {
		return internal.CloseProtocolError
	}

	maskEnabled := c.fh.GetMask()
	if err := c.checkMask(maskEnabled); err != nil {
		return err
	}

	var opcode = c.fh.GetOpcode()
	var compressed = c.pd.Enabled && c.fh.GetRSV1()
	if !opcode.isDataFrame() {
		return c.readControl()
	}

	// 分片消息的帧数有上限: 否则空的延续帧可以让一个消息永远不结束
	// A fragmented message has at most ReadMaxFrames frames: otherwise empty continuation frames
	// keep a message open for ever
	if opcode == OpcodeContinuation && c.continuationFrame.initialized {
		c.continuationFrame.frames++
		if c.continuationFrame.frames > c.config.ReadMaxFrames {
			return internal.NewError(internal.CloseMessageTooLarge, ErrTooManyFrames)
		}
	}

	// 整个消息不能超过读取上限: 在读取负载之前检查
	// The whole message must fit in the read limit: checked before the payload is read
	if opcode == OpcodeContinuation && c.continuationFrame.initialized &&
		c.continuationFrame.buffer.Len()+contentLength > c.config.ReadMaxPayloadSize {
		return internal.CloseMessageTooLarge
	}

	var fin = c.fh.GetFIN()
	// 压缩帧的缓冲区之后留出 flateTail 的空间, 解压时追加
	// A compressed frame's buffer keeps room for flateTail, appended when it is inflated
	var tail = 0
	if compressed {
		tail = len(flateTail)
	}
	buf, err := c.readPayload(contentLength, tail)
	var closer = Message{Data: buf}
	defer closer.Close()
	if err != nil {
		return err
	}
	var p = buf.Bytes()
	if maskEnabled {
		internal.MaskXOR(p, c.fh.GetMaskKey())
	}

	if opcode != OpcodeContinuation && c.continuationFrame.initialized {
		return internal.CloseProtocolError
	}

	if fin && opcode != OpcodeContinuation {
		if !compressed {
			closer.Data = nil
		}
		return c.emitMessage(&Message{Opcode: opcode, Data: buf, compressed: compressed})
	}

	// 处理分片消息
	// processing segmented messages
	if !fin && opcode != OpcodeContinuation {
		c.continuationFrame.initialized = true
		c.continuationFrame.compressed = compressed
		c.continuationFrame.opcode = opcode
		c.continuationFrame.frames = 1
		c.continuationFrame.buffer = bytes.NewBuffer(make([]byte, 0, contentLength))
	}
	if !c.continuationFrame.initialized {
		return internal.CloseProtocolError
	}

	c.continuationFrame.buffer.Write(p)
	if !fin {
		return nil
	}

	msg := &Message{Opcode: c.continuationFrame.opcode, Data: c.continuationFrame.buffer, compressed: c.continuationFrame.compressed}
	c.continuationFrame.reset()
	return c.emitMessage(msg)
}

// 负载缓冲区的初始大小上限
// The most a payload buffer holds before the first bytes of the payload have arrived
const payloadChunk = 4096

// readPayload 读取 n 字节的负载到内存池的缓冲区中, 缓冲区的长度就是负载, 其后留有 tail 字节的空间.
// 缓冲区随读到的数据增长, 而不是按声明的长度预先分配: 声明一个大帧却只发送几个字节的对端, 只占用几 KiB.
// readPayload reads a payload of n bytes into a pooled buffer whose bytes are the payload, with
// room for tail bytes after it (flateTail, for a compressed frame). The buffer is sized by what
// has arrived, and grows as more arrives, instead of being allocated for the announced length up
// front: a peer that announces a large frame and sends a few bytes holds a few KiB, not the read
// limit (payloadRoom). A frame sent at once is read with no copy: what the bufio.Reader holds
// already sizes the buffer for the whole payload, up to sixteen times that.
func (c *Conn) readPayload(n, tail int) (*bytes.Buffer, error) {
	var buf = binaryPool.Get(payloadRoom(n, c.br.Buffered(), tail))
	var p = buf.Bytes()[:0]
	var err error
	for len(p) < n && err == nil {
		if room := cap(p) - tail; len(p) >= room {
			var next = binaryPool.Get(payloadRoom(n, len(p), tail))
			p = append(next.Bytes()[:0], p...)
			binaryPool.Put(buf)
			buf = next
		}
		var k int
		k, err = c.br.Read(p[len(p):internal.Min(n, cap(p)-tail)])
		p = p[:len(p)+k]
	}
	*(*[]byte)(unsafe.Pointer(buf)) = p
	if len(p) < n && err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return buf, err
}

// payloadRoom 是 n 字节负载 (其后留 tail 字节) 的缓冲区大小, 已收到 got 字节:
// 内存池给出的容量不超过收到的 16 倍加 payloadChunk.
// payloadRoom is the size to ask binaryPool for, for a payload of n bytes and tail bytes after
// it, of which got bytes have been received: the whole n+tail when the buffer the pool gives for
// it (rounded up to its size class) holds at most sixteen times got plus payloadChunk, else the
// largest power of two within that bound, which the pool gives exactly. The buffer held is never
// more than sixteen times what was received, plus payloadChunk; and, since tail is small, always
// has room for more than got bytes.
func payloadRoom(n, got, tail int) int {
	var bound = math.MaxInt
	if got < (math.MaxInt-payloadChunk)/16 {
		bound = 16*got + payloadChunk
	}
	if n+tail <= bound && binaryPool.Cap(n+tail) <= bound {
		return n + tail
	}
	return 1 << (bits.Len(uint(bound)) - 1)
}

// 分发消息和异常恢复
// Dispatch message & Recovery
func (c *Conn) dispatch(msg *Message) error {
	defer c.config.Recovery(c.config.Logger)
	c.handler.OnMessage(c, msg)
	return nil
}

// 发射消息事件
// Emit onmessage event
func (c *Conn) emitMessage(msg *Message) (err error) {
	if msg.compressed {
		msg.Data, err = c.deflater.Decompress(msg.Data, c.dpsWindow.dict)
		// 解压后超过读取上限: 消息过大 (1009), 不是内部错误
		// Over the read limit once inflated: the message is too big (1009), not an internal error
		if errors.Is(err, internal.CloseMessageTooLarge) {
			return internal.CloseMessageTooLarge
		}
		if err != nil {
			// 无法解压的数据是对端的错误: 无效的负载数据 (1007), 不是内部错误 (1011)
			// Data that does not inflate is the peer's fault: invalid payload data (1007), as
			// Node's ws answers, not an internal error (1011)
			return internal.NewError(internal.CloseUnsupportedData, err)
		}
		_, _ = c.dpsWindow.Write(msg.Bytes())
	}
	if !internal.CheckEncoding(c.config.CheckUtf8Enabled, uint8(msg.Opcode), msg.Bytes()) {
		return internal.NewError(internal.CloseUnsupportedData, ErrTextEncoding)
	}
	if c.config.ParallelEnabled {
		return c.readQueue.Go(msg, c.dispatch)
	}
	return c.dispatch(msg)
}
