package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
)

func TestMatchNamespaceLongestPrefix(t *testing.T) {
	ns := []broker.Namespace{{Prefix: "chat:"}, {Prefix: "chat:vip:"}, {Prefix: "c"}, {Prefix: "#"}}
	for ch, want := range map[string]int{
		"chat:a": 0, "chat:vip:a": 1, "chat:vip": 0, "cat": 2, "#alice": 3, "news": -1, "": -1,
	} {
		if got := broker.MatchNamespace(ns, ch); got != want {
			t.Errorf("%q: namespace %d, want %d", ch, got, want)
		}
	}
	if got := broker.MatchNamespace(nil, "chat:a"); got != -1 {
		t.Errorf("no namespaces: %d", got)
	}
}

func TestCheckNamespaces(t *testing.T) {
	if err := broker.CheckNamespaces([]broker.Namespace{{Prefix: "a:", HistorySize: 0}, {Prefix: "a:b:", HistorySize: 3, HistoryTTL: time.Second}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns   []broker.Namespace
		says string
	}{
		{[]broker.Namespace{{Prefix: "a:"}, {Prefix: "b:"}, {Prefix: "a:"}}, `namespace 2 ("a:"): the prefix of namespace 0 too`},
		{[]broker.Namespace{{Prefix: "a:", HistorySize: -1}}, "negative"},
		{[]broker.Namespace{{Prefix: "a:", HistoryTTL: -1}}, "negative"},
		{[]broker.Namespace{{Prefix: ""}}, "empty prefix"},
	} {
		if err := broker.CheckNamespaces(c.ns); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want it to say %q", c.ns, err, c.says)
		}
	}
}

func TestDedupHash(t *testing.T) {
	a, _ := broker.DedupHash("ab", "c")
	b, _ := broker.DedupHash("a", "bc")
	if a == b {
		t.Fatal(`("ab","c") and ("a","bc") share a hash`)
	}
	if _, err := broker.DedupHash("a", ""); err == nil {
		t.Fatal("an empty key: accepted")
	}
	if _, err := broker.DedupHash("a", strings.Repeat("k", broker.MaxDedupKeyLen+1)); err == nil {
		t.Fatal("a key beyond MaxDedupKeyLen: accepted")
	}
}
