package nats

import (
	"context"
	"fmt"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
)

// TestRestartKeepsStreamsAndFillsTheGap: NATS restarts on its store; history, offsets and
// epochs survive it, and a subscribed node that was still reconnecting while another published
// delivers everything, in order, once.
func TestRestartKeepsStreamsAndFillsTheGap(t *testing.T) {
	dir := t.TempDir()
	s := runServer(t, dir, 0)
	url := s.ClientURL()
	ctx := context.Background()
	col := newCollector()
	slow := started(t, s, Options{ConnectOptions: []natsgo.Option{natsgo.ReconnectWait(400 * time.Millisecond)}}, col.deliver)
	fast := started(t, s, Options{}, nil)
	if err := slow.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	var first broker.Position
	for i := 1; i <= 3; i++ {
		p, err := slow.Publish(ctx, "r", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		first = p
	}
	col.wait(t, "r", 3)
	s.Shutdown()
	s.WaitForShutdown()
	runServerAt(t, dir, url)

	for i := 4; i <= 6; i++ {
		var (
			p   broker.Position
			err error
		)
		eventually(t, "a publication after the restart", func() bool {
			p, err = fast.Publish(ctx, "r", []byte(fmt.Sprint(i)))
			return err == nil
		})
		if p.Epoch != first.Epoch || p.Offset != uint64(i) {
			t.Fatalf("publication %d after the restart: %+v (before: %+v)", i, p, first)
		}
	}
	if slow.nc.IsConnected() {
		t.Log("the slow node reconnected before the publications: the gap is filled by the dispatcher, not the reconnect")
	}
	checkSequence(t, "slow node", col.wait(t, "r", 6), 6)
	time.Sleep(50 * time.Millisecond)
	checkSequence(t, "slow node, a moment later", col.get("r"), 6)
	if _, err := fast.Publish(ctx, "r", []byte("7")); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, "slow node, subscribed again after the restart", col.wait(t, "r", 7), 7)
	r, err := slow.History(ctx, "r", &broker.Position{}, 100)
	if err != nil || !r.Complete || len(r.Publications) != 7 || r.Epoch != first.Epoch {
		t.Fatalf("history after the restart: %+v %v", r, err)
	}
}
