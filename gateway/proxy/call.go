package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wsgate/wsgate/protocol"
)

// callKind names a call; it decides how refusals map and whether retries are safe.
type callKind int

const (
	callConnect callKind = iota
	callRefresh
	callSubscribe
	callPublish
	callRPC
)

func (k callKind) String() string {
	return [...]string{"connect", "refresh", "subscribe", "publish", "rpc"}[k]
}

// drainBytes bounds what is read of an answer that is not used (a 5xx page, a 403), so that
// a short one lets the connection to the backend be reused and a long one does not cost more.
const drainBytes = 4 << 10

// wireRequest is the body of every call; see the package doc for the fields.
type wireRequest struct {
	Client    string            `json:"client"`
	Transport string            `json:"transport"`
	Remote    string            `json:"remote,omitempty"`
	User      string            `json:"user,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Token     string            `json:"token,omitempty"`
	Channel   string            `json:"channel,omitempty"`
	Method    string            `json:"method,omitempty"`
	Data      json.RawMessage   `json:"data,omitempty"`
}

// outcome is what one attempt got: an answer's body (status 200), a status, or a transport
// error; and whether another attempt may be made.
type outcome struct {
	status int
	body   []byte
	err    error
	retry  bool
}

// invoke makes a call and decodes its answer into a T, the call's result.
func invoke[T any](ctx context.Context, p *Proxy, k callKind, ep *Endpoint, cl Client, w *wireRequest) (*T, error) {
	var res *T
	err := p.call(ctx, k, ep, cl, w, func(body []byte) *Error {
		var e *Error
		res, e = decode[T](k, body)
		return e
	})
	return res, err
}

// call POSTs w, completed with cl, to ep, retrying as ep allows within ctx, and hands the body
// of a 200 answer to decode; it returns decode's *Error, or its own.
func (p *Proxy) call(ctx context.Context, k callKind, ep *Endpoint, cl Client, w *wireRequest, decode func([]byte) *Error) error {
	if ep.URL == "" {
		return &Error{Call: k.String(), Reply: protocol.Errorf(protocol.CodeNotAvailable, "%s not available", k)}
	}
	w.Client, w.Transport, w.Remote, w.User = cl.Name, cl.Transport, cl.Remote, cl.User
	if w.Transport == "" {
		w.Transport = protocol.Subprotocol
	}
	var hdr http.Header
	hdr, w.Headers = p.headers(cl.Header)
	body, err := json.Marshal(w)
	if err != nil { // only invalid data can fail, which the hub never passes on
		return &Error{Call: k.String(), Reply: protocol.Errorf(protocol.CodeBadRequest, "invalid data"), Cause: err}
	}
	retries := max(ep.Retries, 0)
	start := time.Now()
	for attempt := 1; ; attempt++ {
		o := p.attempt(ctx, k, ep, hdr, body)
		if o.err == nil && o.status == http.StatusOK {
			if e := decode(o.body); e != nil {
				e.Status, e.Attempts = o.status, attempt
				p.count(k, start, e, e.Cause == nil)
				return e
			}
			p.count(k, start, nil, false)
			return nil
		}
		retry := o.retry && attempt <= retries && ctx.Err() == nil
		if retry && p.backoff(ctx, attempt) {
			continue
		}
		e := p.failure(k, o)
		e.Attempts = attempt
		p.count(k, start, e, e.Cause == nil) // 401, 403: refused without a code of its own
		switch {
		case ctx.Err() != nil:
			if !errors.Is(e.Cause, ctx.Err()) {
				e.Cause = errors.Join(e.Cause, context.Cause(ctx))
			}
			e.Cause = fmt.Errorf("the call's context ended: %w", e.Cause)
		case retry:
			e.Cause = fmt.Errorf("%w; no time left for a retry before the call's deadline", e.Cause)
		}
		return e
	}
}

// attempt makes one request, within ep.Timeout.
func (p *Proxy) attempt(ctx context.Context, k callKind, ep *Endpoint, hdr http.Header, body []byte) outcome {
	actx, cancel := context.WithTimeout(ctx, ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil { // New checked the URL
		return outcome{err: err}
	}
	req.Header = hdr.Clone() // a client's cookie jar would add to it
	resp, err := p.client.Do(req)
	if err != nil {
		if uerr := (*url.Error)(nil); errors.As(err, &uerr) {
			err = uerr.Err // keep the URL, which may hold a secret, out of the text
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %v: %w", ep.Timeout, err)
		}
		// A publish is retried only when it cannot have reached the backend: its connection
		// was never made. Go's transport itself retries a request on a reused connection that
		// the backend closed before any of it was written.
		return outcome{err: err, retry: k != callPublish || unsent(err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		// Read a little so that a short page leaves the connection reusable; Close drops
		// the connection when more was left.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
		s := resp.StatusCode
		return outcome{status: s, retry: k != callPublish && (s == http.StatusBadGateway || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout)}
	case resp.ContentLength > int64(p.cfg.MaxResponseBytes):
		return outcome{status: resp.StatusCode, err: errTooLarge(p.cfg.MaxResponseBytes)}
	}
	// Read at most one byte past the bound: an answer that has it is too long, and the rest is
	// never read (Close then drops the connection to the backend).
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(p.cfg.MaxResponseBytes)+1))
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return outcome{status: resp.StatusCode, err: fmt.Errorf("answer not read within %v: %w", ep.Timeout, err), retry: k != callPublish}
	case err != nil:
		return outcome{status: resp.StatusCode, err: fmt.Errorf("reading the answer: %w", err), retry: k != callPublish}
	case len(b) > p.cfg.MaxResponseBytes:
		return outcome{status: resp.StatusCode, err: errTooLarge(p.cfg.MaxResponseBytes)}
	}
	return outcome{status: resp.StatusCode, body: b}
}

// errTooLarge is the cause of an answer longer than MaxResponseBytes.
type errTooLarge int

func (e errTooLarge) Error() string { return fmt.Sprintf("answer longer than %d bytes", int(e)) }

// unsent tells whether a transport error happened before the request could be written: no
// connection to the backend could be made.
func unsent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// backoff waits before the retry after attempt n; false when ctx ends first, or would end
// during the wait (then the retry could not be made in time, and the call fails at once).
func (p *Proxy) backoff(ctx context.Context, n int) bool {
	d := p.cfg.Backoff
	for i := 1; i < n && d < p.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.cfg.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// headers returns the HTTP headers of a call for a client's handshake headers h, and the
// forwarded ones for the body.
func (p *Proxy) headers(h http.Header) (http.Header, map[string]string) {
	out := make(http.Header, len(p.forward)+len(p.static)+2)
	var fwd map[string]string
	hop := h.Values("Connection") // names the client's Connection header made hop-by-hop
	for _, name := range p.forward {
		vv := h.Values(name)
		if len(vv) == 0 || listed(hop, name) {
			continue
		}
		kept := make([]string, 0, len(vv))
		for _, v := range vv {
			if !strings.ContainsAny(v, "\r\n\x00") { // net/http never lets them in; a hand-made Header might
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			continue
		}
		out[name] = kept
		if fwd == nil {
			fwd = make(map[string]string, len(p.forward))
		}
		sep := ", "
		if name == "Cookie" {
			sep = "; "
		}
		fwd[name] = strings.Join(kept, sep)
	}
	for name, vv := range p.static {
		out[name] = vv
	}
	out["Content-Type"] = []string{"application/json"}
	out["Accept"] = []string{"application/json"}
	return out, fwd
}

// listed tells whether name is one of the comma-separated tokens of the header values vv.
func listed(vv []string, name string) bool {
	for _, v := range vv {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

// hopByHop are the headers a call never forwards nor adds: those of one HTTP hop (RFC 9110
// §7.6.1), the body's own, and the WebSocket handshake's.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
	"Content-Length", "Content-Type", "Content-Encoding", "Accept-Encoding"}

// checkHeaderName refuses a name that is not an HTTP token, or that must not be forwarded.
func checkHeaderName(name string) error {
	if name == "" {
		return errors.New("an empty header name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return fmt.Errorf("%q is not a header name", name)
		}
	}
	canon := http.CanonicalHeaderKey(name)
	for _, h := range hopByHop {
		if canon == h {
			return fmt.Errorf("%q is a hop-by-hop or body header, never forwarded", name)
		}
	}
	if strings.HasPrefix(canon, "Sec-Websocket-") {
		return fmt.Errorf("%q belongs to the WebSocket handshake, never forwarded", name)
	}
	return nil
}
