package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/broker"
	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// TestRefusedPublicationIsStoredAtMostOnce: error 201 on a publish means "not acknowledged",
// not "not stored" (PROTOCOL.md): the stream's leader loses its two followers, so a publication
// cannot reach a quorum and is refused with 201 at the broker's Timeout, yet it sits in the
// leader's log. Then the leader's server and one follower's start again, in that order (so the
// old leader, whose log is the longer, can be elected), and the leader may commit it. What must
// hold: the acknowledged publication is kept at its offset, and the refused one is either gone
// or right after it, once, never a hole and never a second copy.
func TestRefusedPublicationIsStoredAtMostOnce(t *testing.T) {
	ns := runNATSCluster(t)
	bo := natsbroker.Options{Replicas: 3, Timeout: 500 * time.Millisecond}
	startNode(t, clusterURL(ns, 0), bo, hub.Options{}) // creates the stream
	leader := streamLeader(t, ns)
	a := startNode(t, ns[leader].URL(), bo, hub.Options{}) // on the leader's server only
	ctx := context.Background()
	first, err := a.hub.Publish(ctx, "kept", []byte(`"acknowledged"`))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range ns {
		if i != leader {
			n.stop()
		}
	}
	_, err = a.hub.Publish(ctx, "kept", []byte(`"refused"`))
	var perr *protocol.Error
	if !errors.As(err, &perr) || perr.Code != protocol.CodeUnavailable || perr.HTTPStatus() != 503 {
		t.Fatalf("publish without a quorum: %v, want error 201 (HTTP 503)", err)
	}
	ns[leader].restart()
	ns[(leader+1)%3].start()
	var h broker.HistoryResult
	waitUntil(t, "history once the cluster is back", 20*time.Second, func() bool {
		h, err = a.hub.History(ctx, "kept", &broker.Position{}, 10)
		return err == nil
	})
	var got []string
	for _, p := range h.Publications {
		got = append(got, fmt.Sprintf("%d: %s", p.Offset, p.Data))
	}
	ok := len(h.Publications) >= 1 && h.Publications[0].Offset == first.Offset && string(h.Publications[0].Data) == `"acknowledged"`
	switch len(h.Publications) {
	case 1:
	case 2:
		ok = ok && h.Publications[1].Offset == first.Offset+1 && string(h.Publications[1].Data) == `"refused"`
	default:
		ok = false
	}
	if !ok || !h.Complete {
		t.Fatalf("history after the restart: %v (complete %v); want the acknowledged publication at %d, then the refused one at most once", got, h.Complete, first.Offset)
	}
	t.Logf("the publication refused with 201 was %s", map[bool]string{true: "stored after all", false: "not stored"}[len(got) == 2])
}
