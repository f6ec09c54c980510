package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/broker/memory"
	"github.com/wsgate/wsgate/client/apiclient"
	"github.com/wsgate/wsgate/gateway/api"
	"github.com/wsgate/wsgate/hub"
)

// hubNode serves publish and history from a hub; the gateway's Node (package gateway) serves
// every endpoint.
type hubNode struct {
	api.Node // the rest: not served by this example
	h        *hub.Hub
}

func (n hubNode) Publish(ctx context.Context, ch string, data json.RawMessage, _ string) (broker.Position, error) {
	return n.h.Publish(ctx, ch, data)
}

func (n hubNode) History(ctx context.Context, ch string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	return n.h.History(ctx, ch, since, limit)
}

// A backend publishes through a server's API, reads the channel's history, and tells a refusal
// by its status and code.
func Example() {
	ctx := context.Background()
	h, _ := hub.New(ctx, memory.New(nil), nil)
	defer h.Close(ctx)
	handler, _ := api.New(hubNode{h: h}, api.Options{Keys: []string{"s3cret-key"}})
	srv := httptest.NewServer(handler)
	defer srv.Close()

	c, err := apiclient.New(srv.URL+"/api", "s3cret-key", nil)
	if err != nil {
		panic(err)
	}
	pos, err := c.Publish(ctx, "news", json.RawMessage(`{"headline":"wsgate ships"}`), "")
	fmt.Println(pos.Offset, err)
	hist, _ := c.History(ctx, "news", nil, 10)
	fmt.Println(len(hist.Publications), string(hist.Publications[0].Data))

	_, err = c.Publish(ctx, "bad channel", json.RawMessage(`1`), "")
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		fmt.Println(ae.Status, ae.Code, ae.Retryable())
	}
	wrong, _ := apiclient.New(srv.URL+"/api", "guess", nil)
	_, err = wrong.Publish(ctx, "news", json.RawMessage(`1`), "")
	fmt.Println(err)
	// Output:
	// 1 <nil>
	// 1 {"headline":"wsgate ships"}
	// 400 102 false
	// apiclient: 403 Forbidden (code 104): API key not valid
}
