package wsgate

import (
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
)

// Metrics is a snapshot of a Server's counters, for an exporter to read at scrape time (the
// binary's /metrics reads it for Prometheus; see docs/METRICS.md). Counting costs the hot path one
// atomic add per event: the per-message counters are each connection's own (80 bytes of its Conn,
// shared with no other connection), summed at scrape time; the others are
// the Server's, in fixed arrays over bounded label sets. Every field but Connections, Parked and
// WaitingForReader only grows.
type Metrics struct {
	Connections int64  // open now (registered, not yet ended)
	Opened      uint64 // upgrades completed
	// Parked is how many open connections are parked now: no reader goroutine, no read buffer
	// (Config.ParkAfter); Wakeups counts the times a parked connection got a reader again.
	Parked  int64
	Wakeups uint64
	// WaitingForReader is how many woken connections wait now for one of the Config.MaxReaders
	// readers; WaitedForReader counts the wake-ups that had to wait (docs/RUNTIME.md).
	WaitingForReader int64
	WaitedForReader  uint64

	// Closed counts ended connections by the close code they ended with (CloseError.Code), one
	// entry per code of MetricsCloseCodes and a last one for every other code (application codes
	// 3000-4999 included).
	Closed [len(MetricsCloseCodes) + 1]uint64

	// Handshakes counts answered opening handshakes by HTTP status, one entry per status of
	// MetricsHandshakeStatuses and a last one for any other (a transport failure after hijack, a
	// status chosen by Config.Admit outside the list).
	Handshakes [len(MetricsHandshakeStatuses) + 1]uint64
	// HandshakesShed counts the handshakes (and browsers' probes) Config.MaxHandshakeRate turned
	// away, 503 with Retry-After; they count in Handshakes' 503 too, with the refusals at
	// MaxConnections and while shutting down.
	HandshakesShed uint64

	MessagesReceivedText, MessagesReceivedBinary uint64 // data messages read, whole
	MessagesSentText, MessagesSentBinary         uint64 // data messages the socket took in full
	// BytesReceived and BytesSent count what crossed the socket after the handshake: frame
	// headers and control frames included, compressed size under permessage-deflate. They are
	// the sums of the bytes of text, binary and control (ping, pong, close) frames, headers
	// included, each counted as it crosses (a continuation frame as its message's type).
	BytesReceived, BytesSent                                     uint64
	BytesReceivedText, BytesReceivedBinary, BytesReceivedControl uint64
	BytesSentText, BytesSentBinary, BytesSentControl             uint64

	SendQueueDropped   uint64 // messages discarded by the slow-consumer policy (PolicyDropNewest/Oldest)
	SlowConsumerCloses uint64 // connections closed 1013 "slow consumer" (PolicyClose)
	PongTimeouts       uint64 // connections ended because the peer stopped answering pings
	WriteTimeouts      uint64 // connections ended because a write passed Config.WriteTimeout
	HandlerPanics      uint64 // handler panics recovered
}

// MetricsCloseCodes are the close codes Metrics.Closed counts one by one; the others share its
// last entry.
var MetricsCloseCodes = [...]CloseCode{CloseNormal, CloseGoingAway, CloseProtocolError,
	CloseUnsupportedData, CloseNoStatus, CloseAbnormal, CloseInvalidPayload, ClosePolicyViolation,
	CloseMessageTooBig, CloseMandatoryExt, CloseInternalError, CloseServiceRestart, CloseTryAgainLater,
	CloseBadGateway}

// MetricsHandshakeStatuses are the HTTP statuses Metrics.Handshakes counts one by one: 101 for an
// upgrade, then every refusal wsgate answers itself or that Config.Admit commonly chooses.
var MetricsHandshakeStatuses = [...]int{http.StatusSwitchingProtocols, http.StatusBadRequest,
	http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed,
	http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong, http.StatusUpgradeRequired,
	http.StatusTooManyRequests, http.StatusRequestHeaderFieldsTooLarge, http.StatusInternalServerError,
	http.StatusServiceUnavailable}

// MetricsCloseCodeLabel names entry i of Metrics.Closed: the code in decimal, or "other".
func MetricsCloseCodeLabel(i int) string {
	if i < len(MetricsCloseCodes) {
		return strconv.Itoa(int(MetricsCloseCodes[i]))
	}
	return "other"
}

// MetricsHandshakeStatusLabel names entry i of Metrics.Handshakes: the status in decimal, or "other".
func MetricsHandshakeStatusLabel(i int) string {
	if i < len(MetricsHandshakeStatuses) {
		return strconv.Itoa(MetricsHandshakeStatuses[i])
	}
	return "other"
}

// serverMetrics are the Server's counters behind Metrics (accepted, dropped and panics stay in
// the Server's own fields, which Stats reads too).
type serverMetrics struct {
	closed      [len(MetricsCloseCodes) + 1]atomic.Uint64
	handshakes  [len(MetricsHandshakeStatuses) + 1]atomic.Uint64
	shed        atomic.Uint64
	slowCloses  atomic.Uint64
	pongTimeout atomic.Uint64
	writeTimout atomic.Uint64
}

// connCounters are a connection's message and byte counts, its own so that counting never shares
// a cache line with another connection: counters shared by all connections, even striped, cost a
// busy server on several cores a line moving between cores on most messages. The reader adds to
// the In side; the Out side is added to under the wire's write lock. Metrics sums the live
// connections' counters at scrape time, and the registry folds an ended connection's counters into
// its shard's totals (connTotals) under the lock that Metrics reads them under, so that a total
// never goes back; what is counted after that, while it lingers, is folded in once its socket is
// closed (Server.forget), so that it is not lost.
type connCounters struct {
	msgsIn  [2]atomic.Uint64 // text, binary
	msgsOut [2]atomic.Uint64 // text, binary
	// bytesIn and bytesOut are what crossed the socket after the handshake, each byte counted
	// once, by the type of the frame it belongs to (header included): text, binary, control.
	// Their sum is the total, so that every series read from them only grows.
	bytesIn  [3]atomic.Uint64
	bytesOut [3]atomic.Uint64
}

// Frame types, as bytesIn and bytesOut count them.
const (
	bytesText = iota
	bytesBinary
	bytesControl
)

// bytesKind is the bytesIn/bytesOut entry of a frame of opcode op; continuation frames are the
// caller's to resolve (their message's type).
func bytesKind(op byte) int {
	switch op & 0x0f {
	case opText:
		return bytesText
	case opBinary:
		return bytesBinary
	}
	return bytesControl
}

// connTotals are a registry shard's counts: those of its ended connections (under the shard's
// lock), or, in Metrics, those plus its live ones'.
type connTotals struct {
	msgsIn, msgsOut   [2]uint64
	bytesIn, bytesOut [3]uint64
}

// totals reads c's counts.
func (c *connCounters) totals() connTotals {
	var t connTotals
	for i := range 2 {
		t.msgsIn[i], t.msgsOut[i] = c.msgsIn[i].Load(), c.msgsOut[i].Load()
	}
	for i := range 3 {
		t.bytesIn[i], t.bytesOut[i] = c.bytesIn[i].Load(), c.bytesOut[i].Load()
	}
	return t
}

// plus adds u to t.
func (t *connTotals) plus(u connTotals) {
	for i := range 2 {
		t.msgsIn[i] += u.msgsIn[i]
		t.msgsOut[i] += u.msgsOut[i]
	}
	for i := range 3 {
		t.bytesIn[i] += u.bytesIn[i]
		t.bytesOut[i] += u.bytesOut[i]
	}
}

// minus takes u, counted earlier on the same connection, from t.
func (t *connTotals) minus(u connTotals) {
	for i := range 2 {
		t.msgsIn[i] -= u.msgsIn[i]
		t.msgsOut[i] -= u.msgsOut[i]
	}
	for i := range 3 {
		t.bytesIn[i] -= u.bytesIn[i]
		t.bytesOut[i] -= u.bytesOut[i]
	}
}

func (m *serverMetrics) handshake(status int) {
	i := len(MetricsHandshakeStatuses)
	for j, s := range MetricsHandshakeStatuses {
		if s == status {
			i = j
			break
		}
	}
	m.handshakes[i].Add(1)
}

// ended counts a connection's end by its result.
func (m *serverMetrics) ended(res *CloseError) {
	i := len(MetricsCloseCodes)
	for j, c := range MetricsCloseCodes {
		if c == res.Code {
			i = j
			break
		}
	}
	m.closed[i].Add(1)
	switch {
	case errors.Is(res.Err, ErrSlowConsumer):
		m.slowCloses.Add(1)
	case errors.Is(res.Err, ErrPongTimeout):
		m.pongTimeout.Add(1)
	case errors.Is(res.Err, ErrWriteTimeout):
		m.writeTimout.Add(1)
	}
}

// countMessage counts a data message of opcode op (Text or Binary; anything else is not counted).
func countMessage(ctr *[2]atomic.Uint64, op MessageType) {
	switch op {
	case Text:
		ctr[0].Add(1)
	case Binary:
		ctr[1].Add(1)
	}
}

// Metrics returns a snapshot of the server's counters. It reads every live connection's counters,
// a shard of the registry at a time under that shard's lock (about 13 ms per 100,000 connections,
// BenchmarkMetricsScrape): call it at scrape time, not per message.
func (s *Server) Metrics() Metrics {
	var t connTotals
	var n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += int64(len(sh.m))
		t.plus(sh.gone)
		for _, c := range sh.m {
			t.plus(c.ctr.totals())
		}
		sh.mu.Unlock()
	}
	m := &s.metrics
	r := Metrics{
		Connections: n, Opened: s.accepted.Load(), Parked: s.parked.Load(), Wakeups: s.wakeups.Load(),
		WaitingForReader: s.readers.waiting.Load(), WaitedForReader: s.readers.waited.Load(),
		HandshakesShed: m.shed.Load(), SendQueueDropped: s.dropped.Load(), SlowConsumerCloses: m.slowCloses.Load(),
		PongTimeouts: m.pongTimeout.Load(), WriteTimeouts: m.writeTimout.Load(), HandlerPanics: s.panics.Load(),
		MessagesReceivedText: t.msgsIn[0], MessagesReceivedBinary: t.msgsIn[1],
		MessagesSentText: t.msgsOut[0], MessagesSentBinary: t.msgsOut[1],
		BytesReceived: t.bytesIn[0] + t.bytesIn[1] + t.bytesIn[2], BytesSent: t.bytesOut[0] + t.bytesOut[1] + t.bytesOut[2],
		BytesReceivedText: t.bytesIn[bytesText], BytesReceivedBinary: t.bytesIn[bytesBinary], BytesReceivedControl: t.bytesIn[bytesControl],
		BytesSentText: t.bytesOut[bytesText], BytesSentBinary: t.bytesOut[bytesBinary], BytesSentControl: t.bytesOut[bytesControl],
	}
	for i := range m.closed {
		r.Closed[i] = m.closed[i].Load()
	}
	for i := range m.handshakes {
		r.Handshakes[i] = m.handshakes[i].Load()
	}
	return r
}
