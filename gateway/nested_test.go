package gateway_test

import (
	"encoding/json"
	"testing"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/protocol"
)

// A namespace inside another (chat:public: in chat:) that sets no history of its own keeps the
// server's, not its parent's: the broker matches the longest prefix in the list it is given.
func TestNestedNamespaceKeepsTheServersHistory(t *testing.T) {
	cfg := &gateway.Config{Namespaces: []gateway.Namespace{
		{Prefix: "chat:", ChannelRules: gateway.ChannelRules{HistorySize: intp(0)}},
		{Prefix: "chat:public:", ChannelRules: gateway.ChannelRules{Publish: boolp(true)}},
	}}
	s := start(t, cfg, nil)
	c := dialV1(t, s.url, nil)
	for i := range 3 {
		c.ok(map[string]any{"op": "publish", "channel": "chat:public:lobby", "data": i})
		c.ok(map[string]any{"op": "publish", "channel": "chat:other", "data": i})
	}
	for ch, want := range map[string]int{"chat:public:lobby": 3, "chat:other": 0} {
		var h protocol.HistoryResult
		if err := json.Unmarshal(c.ok(map[string]any{"op": "history", "channel": ch}), &h); err != nil {
			t.Fatal(err)
		}
		if len(h.Publications) != want {
			t.Errorf("%s: history of %d publications, want %d", ch, len(h.Publications), want)
		}
	}
}
