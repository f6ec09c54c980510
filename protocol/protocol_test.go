package protocol

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code Code // 0: valid
		id   uint64
	}{
		{`{"id":1,"op":"subscribe","channel":"chat","since":{"epoch":"e","offset":3},"presence":true}`, 0, 1},
		{`{"id":2,"op":"publish","channel":"a:b/c.d@e_f-g","data":[1,2]}`, 0, 2},
		{`{"id":3,"op":"ping"}`, 0, 3},
		{`{"id":4,"op":"history","channel":"c","limit":10}`, 0, 4},
		{`{"id":5,"op":"publish","channel":"c","data":1,"future":"ignored"}`, 0, 5},
		{``, CodeBadRequest, 0},
		{`{"id":6,"op":`, CodeBadRequest, 0},
		{`{"id":7,"op":"x","channel":1}`, CodeBadRequest, 7},
		{`{"op":"ping"}`, CodeBadRequest, 0},
		{`{"id":-1,"op":"ping"}`, CodeBadRequest, 0},
		{`{"id":8}`, CodeBadRequest, 8},
		{`{"id":9,"op":"fly"}`, CodeUnknownOp, 9},
		{`{"id":10,"op":"subscribe","channel":""}`, CodeBadChannel, 10},
		{`{"id":11,"op":"subscribe","channel":"a b"}`, CodeBadChannel, 11},
		{`{"id":12,"op":"subscribe","channel":"` + strings.Repeat("a", 256) + `"}`, CodeBadChannel, 12},
		{`{"id":13,"op":"publish","channel":"c"}`, CodeBadRequest, 13},
		{`{"id":14,"op":"history","channel":"c","limit":1001}`, CodeBadRequest, 14},
		{`{"id":15,"op":"subscribe","channel":"ключ"}`, CodeBadChannel, 15},
	} {
		r, err := Parse([]byte(tc.in))
		switch {
		case tc.code == 0 && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.code != 0 && (err == nil || err.Code != tc.code):
			t.Errorf("%s: got %v, want code %d", tc.in, err, tc.code)
		case r.ID != tc.id:
			t.Errorf("%s: id %d, want %d", tc.in, r.ID, tc.id)
		}
	}
}

func TestEncoding(t *testing.T) {
	push := PubPush(Publication{Channel: "chat", Epoch: "Ab-_9", Offset: 7, Data: json.RawMessage(`{"t":"<b>\"x\""}`)})
	var got struct {
		Push, Channel, Epoch string
		Offset               uint64
		Data                 json.RawMessage
	}
	if err := json.Unmarshal(push, &got); err != nil || got.Push != "pub" || got.Channel != "chat" ||
		got.Epoch != "Ab-_9" || got.Offset != 7 || string(got.Data) != `{"t":"<b>\"x\""}` {
		t.Fatalf("pub push %s: %+v %v", push, got, err)
	}
	if s := string(ErrorReply(0, Errorf(CodeBadRequest, "bad \"x\""))); s != `{"error":{"code":100,"message":"bad \"x\""}}` {
		t.Fatalf("error reply without id: %s", s)
	}
	if s := string(Reply(3, PublishResult{Epoch: "e", Offset: 1})); s != `{"id":3,"result":{"epoch":"e","offset":1}}` {
		t.Fatalf("reply: %s", s)
	}
	if s := string(PresenceChangePush("c", []ClientInfo{{Conn: "1", User: "u"}}, nil)); s != `{"push":"presence","channel":"c","join":[{"conn":"1","user":"u"}],"leave":[]}` {
		t.Fatalf("presence push: %s", s)
	}
}

// TestReplyEncoders: the hand-written encoders of paged replies produce what encoding/json
// produces for the same values, and fit the size PubSize and ReplyOverhead promise.
func TestReplyEncoders(t *testing.T) {
	pubs := []Publication{{Channel: "c", Epoch: "e", Offset: 4, Data: json.RawMessage(`{"a":"\u003c"}`)},
		{Channel: "c", Epoch: "e", Offset: 5, Data: json.RawMessage(`[1,2]`)}}
	epoch := strings.Repeat("\"é<", MaxEpochLen/4)
	for _, tc := range []struct {
		got  []byte
		want any
	}{
		{HistoryReply(9, HistoryResult{Position: Position{Epoch: epoch, Offset: 5}, Complete: true, More: true, Publications: pubs}),
			map[string]any{"id": 9, "result": map[string]any{"epoch": epoch, "offset": 5, "complete": true, "more": true, "publications": pubs}}},
		{HistoryReply(1, HistoryResult{}),
			map[string]any{"id": 1, "result": map[string]any{"epoch": "", "offset": 0, "complete": false, "publications": []Publication{}}}},
		{SubscribeReply(2, SubscribeResult{Epoch: "e", Offset: 5, Recovered: true, Publications: pubs}),
			map[string]any{"id": 2, "result": map[string]any{"epoch": "e", "offset": 5, "recovered": true, "publications": pubs}}},
		{SubscribeReply(3, SubscribeResult{Epoch: "e", Offset: 5, More: true}),
			map[string]any{"id": 3, "result": map[string]any{"epoch": "e", "offset": 5, "recovered": false, "more": true}}},
	} {
		var got, want any
		wb, _ := json.Marshal(tc.want)
		if err := json.Unmarshal(tc.got, &got); err != nil {
			t.Fatalf("%s: %v", tc.got, err)
		}
		_ = json.Unmarshal(wb, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("encoded %s\nwant    %s", tc.got, wb)
		}
	}
	size := ReplyOverhead
	for _, p := range pubs {
		size += PubSize(p)
	}
	if b := HistoryReply(1<<63, HistoryResult{Position: Position{Epoch: strings.Repeat("x", MaxEpochLen), Offset: 1 << 63},
		Complete: true, More: true, Publications: pubs}); len(b) > size {
		t.Errorf("history reply of %d bytes, above its bound %d", len(b), size)
	}
}

// FuzzParse: any frame gets a request or a coded error, never a panic; valid requests re-encode
// to something Parse accepts again.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"subscribe","channel":"chat","since":{"epoch":"e","offset":3}}`,
		`{"id":2,"op":"publish","channel":"c","data":{"a":[1,2,{"b":null}]}}`,
		`{"id":3,"op":"history","channel":"c","limit":10,"since":{"epoch":"e","offset":0}}`,
		`{"id":4,"op":"presence","channel":"c"}`, `{"id":5,"op":"ping"}`, `{"id":6,"op":"unsubscribe","channel":"c"}`,
		`{"id":1e3}`, `[1,2]`, `"str"`, `{"id":1,"op":"publish","channel":"c","data":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			if err.Code == 0 || err.Message == "" {
				t.Fatalf("uncoded error %+v", err)
			}
			if !json.Valid(ErrorReply(r.ID, err)) {
				t.Fatal("error reply is not JSON")
			}
			return
		}
		again, _ := json.Marshal(r)
		if _, err := Parse(again); err != nil {
			t.Fatalf("re-encoded %s rejected: %v", again, err)
		}
		if r.Op == OpPublish && !json.Valid(PubPush(Publication{Channel: r.Channel, Epoch: "e", Offset: 1, Data: r.Data})) {
			t.Fatalf("push of %s is not JSON", r.Data)
		}
	})
}

// TestPubPushAllocatesOnce: the push of a publication is one allocation, its buffer.
func TestPubPushAllocatesOnce(t *testing.T) {
	p := Publication{Channel: "chat", Epoch: "Ab-_9xYz", Offset: 7, Data: json.RawMessage(`{"t":1}`)}
	if n := testing.AllocsPerRun(100, func() { PubPush(p) }); n != 1 {
		t.Fatalf("PubPush: %v allocations, want 1", n)
	}
}

func TestHTTPStatusOfEveryCode(t *testing.T) {
	want := map[Code]int{CodeBadRequest: 400, CodeUnknownOp: 400, CodeBadChannel: 400, CodeTooLarge: 413,
		CodeForbidden: 403, CodeNotSubscribed: 404, CodeAlreadySubscribed: 409, CodeLimitExceeded: 429,
		CodeNotText: 400, CodeInternal: 500, CodeUnavailable: 503, CodeFull: 503, CodeRateLimited: 429}
	for code, status := range want {
		if got := Errorf(code, "x").HTTPStatus(); got != status {
			t.Errorf("code %d: HTTP %d, want %d", code, got, status)
		}
	}
	if got := Errorf(299, "x").HTTPStatus(); got != 500 {
		t.Errorf("an unknown code: HTTP %d, want 500", got)
	}
}
