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

// TestRefusedPublicationIsNotStored: PROTOCOL.md says of error 201 that "a publish refused so
// was not stored". The stream's leader loses its two followers, so a publication cannot reach
// a quorum: it is refused with 201 at the broker's Timeout. Then the leader's server and one
// follower's start again, in that order (so the old leader, whose log is the longer, is the one
// that can be elected). The refused publication must not turn up in the channel's history.
func TestRefusedPublicationIsNotStored(t *testing.T) {
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
	if !errors.As(err, &perr) || perr.Code != protocol.CodeUnavailable {
		t.Fatalf("publish without a quorum: %v, want error 201", err)
	}
	ns[leader].restart()
	ns[(leader+1)%3].start()
	var h broker.HistoryResult
	waitUntil(t, "history once the cluster is back", 20*time.Second, func() bool {
		h, err = a.hub.History(ctx, "kept", &broker.Position{}, 10)
		return err == nil
	})
	if len(h.Publications) != 1 || h.Position != first {
		var got []string
		for _, p := range h.Publications {
			got = append(got, fmt.Sprintf("%d: %s", p.Offset, p.Data))
		}
		t.Fatalf("history after the restart: %v; only offset %d was acknowledged, the other refused with 201", got, first.Offset)
	}
}
