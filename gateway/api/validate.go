package api

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/wsgate/wsgate/protocol"
)

// firstOf returns the first of errs that is not nil: checks run in the order a caller reads them.
func firstOf(errs ...*httpError) *httpError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// validChannel checks a channel name as the hub will (protocol.ValidChannel), naming the field.
func validChannel(field, ch string) *httpError {
	if ch == "" {
		return errorf(http.StatusBadRequest, codeBadChannel, "%s required", field)
	}
	if err := protocol.ValidChannel(ch); err != nil {
		return errorf(http.StatusBadRequest, codeBadChannel, "%s: %s", field, err.Message)
	}
	return nil
}

// validPrefix checks an optional part of a channel name (a prefix, a page's after).
func validPrefix(field, s string) *httpError {
	if s == "" {
		return nil
	}
	return validChannel(field, s)
}

// validCursor checks a presence page's after: a connection's name as presence gives it.
func validCursor(after string) *httpError {
	if len(after) > protocol.MaxChannelLen || !utf8.ValidString(after) {
		return errorf(http.StatusBadRequest, codeBadRequest, "after: not a connection name of a presence page")
	}
	return nil
}

func validUser(user string) *httpError {
	switch {
	case user == "":
		return errorf(http.StatusBadRequest, codeBadRequest, "user required")
	case len(user) > MaxUserLen:
		return errorf(http.StatusBadRequest, codeBadRequest, "user longer than %d bytes", MaxUserLen)
	case !utf8.ValidString(user):
		return errorf(http.StatusBadRequest, codeBadRequest, "user is not UTF-8")
	}
	return nil
}

// validData checks a publication's data: present, JSON (the decoder saw to that), UTF-8 (it
// does not), and within MaxDataSize.
func (a *apiHandler) validData(data json.RawMessage) *httpError {
	switch {
	case len(data) == 0:
		return errorf(http.StatusBadRequest, codeBadRequest, "data required (any JSON value)")
	case len(data) > a.opts.MaxDataSize:
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "data of %d bytes, limit %d", len(data), a.opts.MaxDataSize)
	case !utf8.Valid(data):
		return errorf(http.StatusBadRequest, codeBadRequest, "data is not UTF-8")
	}
	return nil
}

// pageLimit resolves a page's limit: 0 is DefaultLimit; beyond 1..MaxLimit is refused.
func pageLimit(limit int) (int, *httpError) {
	switch {
	case limit == 0:
		return DefaultLimit, nil
	case limit < 0 || limit > MaxLimit:
		return 0, errorf(http.StatusBadRequest, codeBadRequest, "limit %d: 1 to %d (0 or none: %d)", limit, MaxLimit, DefaultLimit)
	}
	return limit, nil
}

// idempotencyKey takes the key from the body's idempotency_key or the Idempotency-Key header;
// both may be given if they agree. At most MaxKeyLen printable ASCII bytes.
func idempotencyKey(r *http.Request, body string) (string, *httpError) {
	hdr := r.Header.Values("Idempotency-Key")
	if len(hdr) > 1 {
		return "", errorf(http.StatusBadRequest, codeBadRequest, "more than one Idempotency-Key header")
	}
	key := body
	if len(hdr) == 1 {
		if body != "" && body != hdr[0] {
			return "", errorf(http.StatusBadRequest, codeBadRequest, "idempotency_key and the Idempotency-Key header differ")
		}
		key = hdr[0]
	}
	if len(key) > MaxKeyLen {
		return "", errorf(http.StatusBadRequest, codeBadRequest, "idempotency key longer than %d bytes", MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < ' ' || key[i] > '~' {
			return "", errorf(http.StatusBadRequest, codeBadRequest, "idempotency key: byte %d is not printable ASCII", i)
		}
	}
	return key, nil
}
