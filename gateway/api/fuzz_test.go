package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wsgate/wsgate/gateway/api"
)

// FuzzRequests feeds any body to every endpoint: the answer is always one JSON object, with
// 200 or a status of the caller's making (4xx), never a 5xx and never a crash.
//
//	go test -run '^$' -fuzz FuzzRequests -fuzztime 30s ./gateway/api/
func FuzzRequests(f *testing.F) {
	routes := api.Routes()
	for i, body := range []string{
		`{"channel":"news","data":{"headline":"wsgate ships"},"idempotency_key":"k"}`,
		`{"channels":["a","b"],"data":1}`,
		`{"user":"alice","channel":"chat:lobby"}`,
		`{"user":"alice","channel":"chat:lobby"}`,
		`{"user":"mallory","code":4500,"reason":"later"}`,
		`{"channel":"chat:lobby","limit":2,"after":"1"}`,
		`{"channel":"chat:lobby"}`,
		`{"channel":"news","since":{"epoch":"","offset":0},"limit":10}`,
		`{"channel":"news"}`,
		`{"prefix":"chat:","after":"chat:a","limit":1}`,
		``,
		`[[[[`, `{"channel":"\ud800","data":"\u0000"}`, `{"data":1e999,"channel":"x"}`, "{\"channel\":\"a\",\"data\":\"\xff\"}",
	} {
		f.Add(uint8(i), []byte(body))
	}
	e := newEnv(f, &api.Options{Keys: []string{testKey}, MaxDataSize: 1 << 10})
	ws := e.dial("alice")
	ws.send(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`)
	ws.next(`"id":1`)
	handler, err := api.New(e.node, api.Options{Keys: []string{testKey}, MaxDataSize: 1 << 10, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := api.DefaultBasePath + routes[int(route)%len(routes)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "apikey "+testKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code != 200 && (rec.Code < 400 || rec.Code == 401 || rec.Code == 403) {
			t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body)
		}
		var v map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v == nil {
			t.Fatalf("%s %q: the answer is not a JSON object: %s", path, body, rec.Body)
		}
		if _, isErr := v["error"]; isErr != (rec.Code != 200) {
			t.Fatalf("%s %q: %d with %s", path, body, rec.Code, rec.Body)
		}
	})
}
