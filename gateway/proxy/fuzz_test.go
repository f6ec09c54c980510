package proxy

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// FuzzAnswer feeds any body to the decoding of every call's answer: it never panics, what it
// accepts is within the bounds the package doc states, and what it refuses is an *Error with
// a wsgate.v1 reply and, if any, a disconnect code within 4000-4999.
//
//	go test -run '^$' -fuzz FuzzAnswer -fuzztime 30s ./gateway/proxy/
func FuzzAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"result":{"user":"alice","info":{"name":"Alice"},"expire_at":1767225600,"channels":["#alice","news"]}}`,
		`{"result":{"user":"bob","expires_in":60,"info":null}}`,
		`{"result":{"expired":true}}`,
		`{"result":{"data":{"text":"hi"}}}`,
		`{"result":{"data":null}}`,
		`{"result":{}}`,
		`{"error":{"code":104,"message":"no"}}`,
		`{"error":{"code":1000,"message":"custom"}}`,
		`{"disconnect":{"code":4003,"reason":"banned"}}`,
		`{"disconnect":{"code":1000}}`,
		`{"result":{"channels":["a","a","b c"]}}`,
		`{"result":[]}`, `null`, ``, `{"result":{"user":"\u00e9\ud800"}}`,
	} {
		f.Add([]byte(seed))
	}
	p, err := New(Config{MaxChannels: 4, MaxDataSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for k := callConnect; k <= callRPC; k++ {
			switch k {
			case callConnect, callRefresh:
				res, e := decode[wireIdentity](k, body)
				if e != nil {
					checkError(t, k, e)
					continue
				}
				id, err := p.identity(k, res, "alice")
				if err != nil {
					checkError(t, k, err)
					continue
				}
				checkIdentity(t, id, p.cfg.MaxChannels)
			case callSubscribe:
				if _, e := decode[struct{}](k, body); e != nil {
					checkError(t, k, e)
				}
			default:
				res, e := decode[wireData](k, body)
				if e != nil {
					checkError(t, k, e)
					continue
				}
				data, err := p.data(k, res, nil)
				if err != nil {
					checkError(t, k, err)
					continue
				}
				if data != nil && (!json.Valid(data) || len(data) > p.cfg.MaxDataSize) {
					t.Fatalf("%s: data %q accepted", k, data)
				}
			}
		}
	})
}

func checkError(t *testing.T, k callKind, err error) {
	var e *Error
	if !errors.As(err, &e) || e.Reply == nil || !known(e.Reply.Code) || e.Call != k.String() {
		t.Fatalf("%s: error %T %v", k, err, err)
	}
	if d := e.Disconnect; d != nil && (d.Code < 4000 || d.Code > 4999 || d.Err != e.Reply || len(d.Reason) > maxReasonLen) {
		t.Fatalf("%s: disconnect %+v", k, d)
	}
	if len(e.Reply.Message) > maxMessageLen {
		t.Fatalf("%s: a message of %d bytes", k, len(e.Reply.Message))
	}
}

func checkIdentity(t *testing.T, id *hub.Identity, maxChannels int) {
	if len(id.User) > hub.MaxUserLen || len(id.Info) > hub.MaxInfoLen || id.Info != nil && !json.Valid(id.Info) ||
		len(id.Channels) > maxChannels {
		t.Fatalf("identity %+v accepted", id)
	}
	for _, ch := range id.Channels {
		if protocol.ValidChannel(ch) != nil {
			t.Fatalf("channel %q accepted", ch)
		}
	}
}
