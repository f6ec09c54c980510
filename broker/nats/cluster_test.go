package nats

import (
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestClusterSendListen(t *testing.T) {
	s := runServer(t, "", 0)
	a, b := newBroker(t, s, Options{Node: "a"}), newBroker(t, s, Options{Node: "b"})
	if !strings.HasPrefix(a.Node(), "a-") || a.Node() == newBroker(t, s, Options{Node: "a"}).Node() {
		t.Fatalf("Node() %q: want the name and a suffix new at every start", a.Node())
	}
	type got struct{ from, msg string }
	var (
		mu      sync.Mutex
		atA     []got
		atB     []got
		topic   = "presence.room 1/*>%" // wildcards, spaces and '.' are safe
		collect = func(dst *[]got) func(string, []byte) {
			return func(from string, msg []byte) {
				mu.Lock()
				*dst = append(*dst, got{from, string(msg)})
				mu.Unlock()
			}
		}
	)
	cancelA, err := a.Listen(topic, collect(&atA))
	if err != nil {
		t.Fatal(err)
	}
	cancelB, err := b.Listen(topic, collect(&atB))
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Listen("presence", collect(&atB)) // another topic: nothing comes
	if err != nil {
		t.Fatal(err)
	}
	defer other()
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"1", "2", "3"} {
		if err := a.Send(topic, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "b receives a's messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(atB) == 3
	})
	mu.Lock()
	want := []got{{a.Node(), "1"}, {a.Node(), "2"}, {a.Node(), "3"}}
	if !slices.Equal(atB, want) || len(atA) != 0 {
		t.Fatalf("at b %v (want %v), at a %v (want nothing: a node does not hear itself)", atB, want, atA)
	}
	mu.Unlock()

	cancelB()
	cancelB() // idempotent
	if err := a.Send(topic, []byte("4")); err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cancelA()
	mu.Lock()
	defer mu.Unlock()
	if len(atB) != 3 {
		t.Fatalf("b heard %v after cancel", atB[3:])
	}
}
