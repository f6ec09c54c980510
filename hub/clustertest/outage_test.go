package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/broker"
	natsbroker "github.com/wsgate/wsgate/broker/nats"
	"github.com/wsgate/wsgate/hub"
	"github.com/wsgate/wsgate/protocol"
)

// outageTimeout is the brokers' Timeout in the outage test, and outageSlack what a loaded
// machine may add to it before an answer reaches the client.
const (
	outageTimeout = 500 * time.Millisecond
	outageSlack   = 500 * time.Millisecond
)

// unavailableWithin runs call and fails the test unless it ends within the broker's Timeout
// (and the slack) with an error 201 whose HTTP status is 503.
func unavailableWithin(t *testing.T, what string, call func() error) {
	t.Helper()
	start := time.Now()
	err := call()
	took := time.Since(start)
	var perr *protocol.Error
	if !errors.As(err, &perr) || perr.Code != protocol.CodeUnavailable || perr.HTTPStatus() != 503 {
		t.Fatalf("%s with NATS down: %v (%T), want a *protocol.Error 201, HTTP 503", what, err, err)
	}
	if took > outageTimeout+outageSlack {
		t.Fatalf("%s with NATS down: answered after %v, the broker's Timeout is %v", what, took, outageTimeout)
	}
}

// backgroundPublisher publishes to channel through c until stopped, as a client that retries
// what is refused: it records the acknowledged publications in led and counts them in acked.
// Every answer must come within the broker's Timeout; a refusal must be 201.
func backgroundPublisher(t *testing.T, c *wsClient, channel string, led *ledger, acked, refused *atomic.Int64) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() { // owner: the test; ended by stop
		defer close(done)
		for k := 0; ; k++ {
			data := fmt.Sprintf(`"b #%d"`, k)
			start := time.Now()
			pos, err := c.publish(channel, data)
			if took := time.Since(start); took > outageTimeout+outageSlack {
				t.Errorf("publish %s answered after %v (%v), the broker's Timeout is %v", data, took, err, outageTimeout)
			}
			var perr *protocol.Error
			switch {
			case err == nil:
				if err := led.record(pos, data); err != nil {
					t.Error(err)
				}
				acked.Add(1)
			case errors.As(err, &perr) && perr.Code == protocol.CodeUnavailable:
				refused.Add(1)
			default:
				t.Errorf("publish %s: %v", data, err)
				return
			}
			pause := time.After(0)
			if err != nil {
				pause = time.After(20 * time.Millisecond) // a client backs off before a retry
			}
			select {
			case <-quit:
				return
			case <-pause:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// TestNATSOutageIsAClearAnswer: with NATS stopped, publishing (from a client or from the server
// side), subscribing and reading history get error 201 within the broker's Timeout, and the
// subscribers stay connected and answered. Once NATS is back on its store, publications made
// then on another node reach them; every publication acknowledged, before the outage or after,
// reaches the subscriber that stayed, and the one that went away and recovers, once each in
// order; and every one of them is in history.
func TestNATSOutageIsAClearAnswer(t *testing.T) {
	srv := runNATS(t)
	// Node a comes back to NATS a second after b: b publishes meanwhile, and a catches up.
	a := startNode(t, srv.URL(), natsbroker.Options{Timeout: outageTimeout,
		ConnectOptions: []natsgo.Option{natsgo.ReconnectWait(time.Second)}}, hub.Options{})
	b := startNode(t, srv.URL(), natsbroker.Options{Timeout: outageTimeout}, hub.Options{})
	const ch = "ops"
	stay := dialWS(t, a.url)
	stayFeed := newFeed(ch, stay.subscribe(ch, nil, false))
	away := dialWS(t, a.url)
	awayFeed := newFeed(ch, away.subscribe(ch, nil, false))
	pubA := dialWS(t, a.url)

	led := newLedger()
	var acked, refused atomic.Int64
	stopPublisher := backgroundPublisher(t, dialWS(t, b.url), ch, led, &acked, &refused)
	defer stopPublisher()
	waitUntil(t, "20 publications before the outage", 10*time.Second, func() bool { return acked.Load() >= 20 })
	if err := awayFeed.readUntil(away, 10); err != nil {
		t.Fatal(err)
	}
	away.ws.Close()

	srv.stop()
	down := time.Now()
	// A publication in flight as NATS stopped may be acknowledged: count from the first refusal.
	refusedBefore := refused.Load()
	waitUntil(t, "the background publisher refused", 2*outageTimeout+outageSlack, func() bool { return refused.Load() > refusedBefore })
	ackedBefore := acked.Load()
	ctx := context.Background()
	for i := range 3 {
		unavailableWithin(t, fmt.Sprintf("client publish %d", i), func() error {
			_, err := pubA.publish(ch, `"a, NATS down"`)
			return err
		})
	}
	unavailableWithin(t, "Hub.Publish", func() error {
		_, err := a.hub.Publish(ctx, ch, []byte(`"server side, NATS down"`))
		return err
	})
	for _, channel := range []string{ch, "fresh"} { // a channel the node has interest in, and one it has not
		unavailableWithin(t, "subscribe to "+channel, func() error {
			f, err := pubA.call(protocol.Request{Op: protocol.OpSubscribe, Channel: channel})
			if err != nil {
				return err
			}
			return f.result(&protocol.SubscribeResult{})
		})
	}
	unavailableWithin(t, "history", func() error {
		f, err := pubA.call(protocol.Request{Op: protocol.OpHistory, Channel: ch, Limit: 10})
		if err != nil {
			return err
		}
		return f.result(&protocol.HistoryResult{})
	})
	// The subscribers stay: no close frame, requests and WebSocket pings answered, for a while.
	if err := stay.answeredFor(down, 4*outageTimeout); err != nil {
		t.Fatalf("the subscriber after NATS went down: %v", err)
	}
	if n := acked.Load(); n != ackedBefore {
		t.Fatalf("%d publications acknowledged with NATS down", n-ackedBefore)
	}
	if refused.Load() == 0 {
		t.Fatal("the background publisher was never refused while NATS was down")
	}

	srv.restart()
	waitUntil(t, "20 publications after NATS is back", 20*time.Second, func() bool {
		return acked.Load() >= ackedBefore+20 || t.Failed()
	})
	stopPublisher()
	top := led.highest()
	t.Logf("%d publications acknowledged, %d refused; %v from the stop to 20 acknowledged after the restart",
		acked.Load(), refused.Load(), time.Since(down).Round(time.Millisecond))

	if err := stayFeed.readUntil(stay, top); err != nil {
		t.Fatalf("the subscriber that stayed: %v", err)
	}
	if miss := led.missing(stayFeed.data, 0, top); len(miss) > 0 {
		t.Fatalf("the subscriber that stayed missed what was acknowledged: %v", miss)
	}

	if _, r := recoverOn(t, "after the outage", a.url, awayFeed); r.Offset < top {
		t.Fatalf("recovered after the outage up to %d, %d was acknowledged", r.Offset, top)
	}
	if miss := led.missing(awayFeed.data, 10, top); len(miss) > 0 {
		t.Fatalf("the recovering subscriber missed what was acknowledged: %v", miss)
	}

	// Nothing acknowledged that is not stored.
	h, err := a.hub.History(ctx, ch, &broker.Position{}, 10000)
	if err != nil || !h.Complete {
		t.Fatalf("history after the outage: complete %v, %v", h.Complete, err)
	}
	stored := map[uint64]string{}
	for _, p := range h.Publications {
		stored[p.Offset] = string(p.Data)
	}
	if miss := led.missing(stored, 0, top); len(miss) > 0 {
		t.Fatalf("acknowledged and not in history after the restart: %v", miss)
	}
}

// TestNodeStopsWithNATSDown: a node whose NATS is gone still stops promptly: its hub drains,
// its server closes the connections with 1001, and the hub and broker close, each well within
// the broker's Timeout, rather than waiting on a NATS that does not answer.
func TestNodeStopsWithNATSDown(t *testing.T) {
	srv := runNATS(t)
	bo, ho := nodeOptions(srv.URL(), natsbroker.Options{Timeout: outageTimeout}, hub.Options{PresenceTTL: time.Second})
	b, err := natsbroker.New(&bo)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(context.Background(), b, &ho)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := wsgate.NewServer(h.Handler(nil), &wsgate.Config{Subprotocols: []string{protocol.Subprotocol}, Logger: ho.Logger})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ws)
	defer hs.Close()
	c := dialWS(t, "ws"+strings.TrimPrefix(hs.URL, "http"))
	c.subscribe("bye", nil, true)
	srv.stop()
	ctx, cancel := context.WithTimeout(context.Background(), outageTimeout)
	defer cancel()
	start := time.Now()
	for _, step := range []struct {
		name string
		do   func(context.Context) error
	}{{"Hub.Drain", h.Drain}, {"Server.Shutdown", ws.Shutdown}, {"Hub.Close", h.Close}} {
		if err := step.do(ctx); err != nil {
			t.Fatalf("%s with NATS down, %v after the start: %v", step.name, time.Since(start).Round(time.Millisecond), err)
		}
	}
	t.Logf("stopped in %v with NATS down", time.Since(start).Round(time.Millisecond))
	if f, err := c.next(time.Second); err == nil {
		t.Fatalf("after the shutdown the client got %v, want the connection's end", f)
	} else if !websocket.IsCloseError(errors.Unwrap(err), websocket.CloseGoingAway) {
		t.Fatalf("the connection ended with %v, want close 1001", err)
	}
}
