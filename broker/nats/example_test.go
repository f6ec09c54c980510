package nats_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/nats"
)

// A broker on a NATS server embedded in the process, as a single wsgate node would run it; a
// cluster of nodes points Options.URL at its NATS servers instead.
func Example() {
	dir, _ := os.MkdirTemp("", "wsgate-nats")
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go srv.Start() // owner: this example; shut down below
	defer srv.WaitForShutdown()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(5 * time.Second) {
		panic("nats server not ready")
	}
	nc, err := natsgo.Connect("", natsgo.InProcessServer(srv), natsgo.ReconnectBufSize(-1))
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	ctx := context.Background()
	b, err := nats.New(&nats.Options{Conn: nc})
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	delivered := make(chan broker.Publication, 10)
	if err := b.Start(ctx, func(p broker.Publication) { delivered <- p }); err != nil {
		panic(err)
	}
	if err := b.Subscribe(ctx, "room.1"); err != nil {
		panic(err)
	}
	for _, msg := range []string{`"hello"`, `"world"`} {
		if _, err := b.Publish(ctx, "room.1", []byte(msg)); err != nil {
			panic(err)
		}
	}
	for range 2 {
		p := <-delivered
		fmt.Println("delivered", p.Channel, p.Offset, string(p.Data))
	}
	r, err := b.History(ctx, "room.1", nil, 10)
	if err != nil {
		panic(err)
	}
	fmt.Println("history", len(r.Publications), "publications, top offset", r.Offset, "complete", r.Complete)
	// Output:
	// delivered room.1 1 "hello"
	// delivered room.1 2 "world"
	// history 2 publications, top offset 2 complete true
}
