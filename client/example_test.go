package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/client"
)

// A round trip with wsgate's echo: dial, write, read the reply, close with a handshake.
func Example() {
	srv, _ := wsgate.NewServer(echoDone, nil)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	ctx := context.Background()
	c, _, err := client.Dial(ctx, url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	if err := c.Write(ctx, wsgate.Text, []byte("Hello!")); err != nil {
		fmt.Println(err)
		return
	}
	_, data, err := c.Read(ctx)
	fmt.Println(string(data), err)
	fmt.Println(c.Close(wsgate.CloseNormal, "bye"))
	_, _, err = c.Read(ctx)
	fmt.Println(wsgate.CloseStatus(err))
	// Output:
	// Hello! done <nil>
	// <nil>
	// 1000
}

// A refused handshake says why: the status and the body of the server's answer.
func ExampleHandshakeError() {
	srv, _ := wsgate.NewServer(echoDone, nil) // same origin only, by default
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")

	_, _, err := client.Dial(context.Background(), url, &client.Options{Origin: "https://elsewhere.example"})
	var he *client.HandshakeError
	if errors.As(err, &he) {
		fmt.Println(he.StatusCode, he.Body)
	}
	// Output: 403 websocket: origin not allowed
}
