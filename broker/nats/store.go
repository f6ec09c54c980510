package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// Headers of a stored publication: its place in the channel's stream. JetStream adds its own
// (Nats-Sequence, ...) when it republishes or returns the message.
const (
	offsetHeader = "Wsgate-Offset"
	epochHeader  = "Wsgate-Epoch"
	seqHeader    = "Nats-Sequence"
	statusHeader = "Status"
	// traceHeader carries a publication's trace context (broker.ContextWithTrace), under the
	// name of the W3C header it holds, which the stream keeps and its republication carries.
	traceHeader = "traceparent"
)

// batchMax bounds the messages asked for in one batched direct get.
const batchMax = 1024

// stored is a publication as the stream holds it.
type stored struct {
	seq   uint64 // stream sequence
	pos   broker.Position
	data  []byte
	trace string // its trace context, if parseStored found one
}

// errForeign is a message in the broker's subjects without its headers: not one of ours.
var errForeign = fmt.Errorf("broker/nats: a stored message without %s and %s", offsetHeader, epochHeader)

// parseStored reads a stored publication from a message JetStream delivered (republished or
// returned by a direct get).
func parseStored(m *natsgo.Msg) (stored, error) {
	off, err := strconv.ParseUint(m.Header.Get(offsetHeader), 10, 64)
	epoch := m.Header.Get(epochHeader)
	if err != nil || epoch == "" {
		return stored{}, errForeign
	}
	seq, _ := strconv.ParseUint(m.Header.Get(seqHeader), 10, 64)
	return stored{seq: seq, pos: broker.Position{Epoch: epoch, Offset: off}, data: m.Data, trace: m.Header.Get(traceHeader)}, nil
}

// directAPI is the subject of the stream's direct get.
func (b *Broker) directAPI() string { return "$JS.API.DIRECT.GET." + b.opts.Stream }

// getRequest is a direct get (or message get) request; see nats-server's JSApiMsgGetRequest.
type getRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	LastFor  string `json:"last_by_subj,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
	// MultiLast asks a direct get for the last message of each subject (check.go).
	MultiLast []string `json:"multi_last,omitempty"`
}

// direct returns the one message a direct get finds; found is false when there is none.
// Direct gets are answered by any replica of the stream, which may lag behind its leader.
func (b *Broker) direct(ctx context.Context, req getRequest) (_ stored, found bool, err error) {
	body, _ := json.Marshal(req)
	m, err := b.nc.RequestWithContext(ctx, b.directAPI(), body)
	if err != nil {
		return stored{}, false, err
	}
	switch st := m.Header.Get(statusHeader); st {
	case "":
	case "404":
		return stored{}, false, nil
	default:
		return stored{}, false, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
	}
	s, err := parseStored(m)
	return s, err == nil, err
}

// next returns the subject's first stored message at stream sequence seq or after.
func (b *Broker) next(ctx context.Context, subj string, seq uint64) (stored, bool, error) {
	return b.direct(ctx, getRequest{Seq: seq, NextFor: subj})
}

// batch returns up to n of the subject's messages from stream sequence seq on, oldest first,
// through batched direct gets: the server streams them to an inbox, then a 204 status.
func (b *Broker) batch(ctx context.Context, subj string, seq uint64, n int) ([]stored, error) {
	out := make([]stored, 0, min(n, batchMax))
	for len(out) < n {
		got, done, err := b.batchOnce(ctx, subj, seq, min(n-len(out), batchMax))
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		if done || len(got) == 0 {
			break
		}
		seq = got[len(got)-1].seq + 1
	}
	return out, nil
}

// batchOnce is one batched direct get; done is true when the subject has nothing after what it
// returned.
func (b *Broker) batchOnce(ctx context.Context, subj string, seq uint64, n int) (_ []stored, done bool, err error) {
	var out []stored
	status, pending, err := b.directBatch(ctx, getRequest{Seq: seq, NextFor: subj, Batch: n}, n, func(m *natsgo.Msg) (bool, error) {
		s, err := parseStored(m)
		if err != nil {
			return false, err
		}
		out = append(out, s)
		// Once n are here the 204 that follows does not matter: what it says of the rest is
		// not wanted.
		return len(out) == n, nil
	})
	switch {
	case err != nil:
		return nil, false, err
	case status == "": // stopped at n
		return out, false, nil
	case status == "404":
		return out, true, nil
	}
	return out, pending == "0", nil
}

// directBatch sends one batched direct get (req) that the server answers with at most n
// messages and a closing status, and hands each message to each until it says stop. It returns
// the closing status ("204": the end of the batch, with its Nats-Num-Pending; "404": nothing
// matched), or "" when each stopped first. Other statuses are errors.
func (b *Broker) directBatch(ctx context.Context, req getRequest, n int, each func(*natsgo.Msg) (stop bool, err error)) (status, pending string, err error) {
	inbox := b.nc.NewRespInbox()
	// The server sends at most n messages and a status: a channel of n+1 never drops one, and
	// costs far less than SubscribeSync's, of nats.go's 64k pending messages (512 KB to zero).
	ch := make(chan *natsgo.Msg, n+1)
	sub, err := b.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return "", "", err
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(req)
	if err := b.nc.PublishRequest(b.directAPI(), inbox, body); err != nil {
		return "", "", err
	}
	for {
		var m *natsgo.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return "", "", ctx.Err()
		}
		switch st := m.Header.Get(statusHeader); st {
		case "":
		case "204":
			return st, m.Header.Get("Nats-Num-Pending"), nil
		case "404":
			return st, "", nil
		case "503":
			return "", "", natsgo.ErrNoResponders
		default:
			return "", "", fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
		}
		if stop, err := each(m); err != nil || stop {
			return "", "", err
		}
	}
}

// msgGetResponse is the stream message get API's answer.
type msgGetResponse struct {
	Message *struct {
		Seq  uint64 `json:"seq"`
		Hdrs []byte `json:"hdrs"` // base64 in JSON, decoded by encoding/json
		Data []byte `json:"data"`
	} `json:"message"`
	Error *apiError `json:"error"`
}

// apiError is a JetStream API error.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("jetstream: %s (%d, code %d)", e.Description, e.ErrCode, e.Code)
}

// JetStream error codes the broker acts on.
const (
	errCodeWrongLastSeq = 10071 // JSStreamWrongLastSequenceErrF
	// errCodeWrongLastSeqConst is the same refusal in a replicated stream while an earlier
	// publication to the subject is still being applied, even when the expectation was right:
	// the leader acks before it clears the subject's in-flight mark.
	errCodeWrongLastSeqConst = 10164 // JSStreamWrongLastSequenceConstantErr
	errCodeNoMessage         = 10037 // JSNoMessageFoundErr
	errCodeNoStream          = 10059 // JSStreamNotFoundErr: deleted, or not yet recovered after a restart
)

// leaderGet is a message get answered by the stream's leader (the stream message get API, not
// a direct get): it reflects every acknowledged publication, where a direct get may come from a
// lagging replica. found is false when there is no such message.
func (b *Broker) leaderGet(ctx context.Context, req getRequest) (_ stored, found bool, err error) {
	body, _ := json.Marshal(req)
	m, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+b.opts.Stream, body)
	if err != nil {
		return stored{}, false, err
	}
	var r msgGetResponse
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return stored{}, false, fmt.Errorf("message get: %w", err)
	}
	switch {
	case r.Error != nil && r.Error.ErrCode == errCodeNoMessage:
		return stored{}, false, nil
	case r.Error != nil && (r.Error.ErrCode == errCodeNoStream || r.Error.Code == 503):
		return stored{}, false, fmt.Errorf("%w: %w", errNotConnected, r.Error)
	case r.Error != nil:
		return stored{}, false, r.Error
	case r.Message == nil:
		return stored{}, false, fmt.Errorf("message get: empty answer")
	}
	off, err := strconv.ParseUint(string(headerValue(r.Message.Hdrs, offsetHeader)), 10, 64)
	epoch := string(headerValue(r.Message.Hdrs, epochHeader))
	if err != nil || epoch == "" {
		return stored{}, false, errForeign
	}
	return stored{seq: r.Message.Seq, pos: broker.Position{Epoch: epoch, Offset: off}, data: r.Message.Data}, true, nil
}

// lastFromLeader is last, answered by the stream's leader: what the expected-last-sequence check
// of the next publication will compare with, and the top of every acknowledged publication.
func (b *Broker) lastFromLeader(ctx context.Context, subj string) (stored, bool, error) {
	return b.leaderGet(ctx, getRequest{LastFor: subj})
}

// lastAcked is the subject's last message as the stream's leader has it: every publication
// acknowledged before the call is at or before it. On a server outside a cluster, the stream's
// only replica is the leader, and a direct get (cheaper: no JSON, no API dispatch) does;
// in a cluster, the leader answers the stream message get API.
func (b *Broker) lastAcked(ctx context.Context, subj string) (stored, bool, error) {
	if b.nc.ConnectedClusterName() == "" {
		return b.direct(ctx, getRequest{LastFor: subj})
	}
	return b.lastFromLeader(ctx, subj)
}

// nextFromLeader is next, answered by the stream's leader.
func (b *Broker) nextFromLeader(ctx context.Context, subj string, seq uint64) (stored, bool, error) {
	return b.leaderGet(ctx, getRequest{Seq: seq, NextFor: subj})
}

// headerValue finds key's value in a NATS header block ("NATS/1.0\r\nKey: value\r\n...").
func headerValue(hdr []byte, key string) []byte {
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.Index(hdr, []byte("\r\n")); i >= 0 {
			line, hdr = hdr[:i], hdr[i+2:]
		} else {
			hdr = nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && string(bytes.TrimSpace(k)) == key {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}
