// Command consumer is a program that imports wsgate as any application does, from its own module.
// It serves wsgate on loopback, sends a frame whose 64-bit payload length has its most significant
// bit set (RFC 6455 §5.2 forbids it), and prints the code of the close frame the server answers.
// consumer_test.go builds it against this checkout; the fixed transport answers 1002, upstream gws
// panicked (wsgate then contains the panic and answers 1011).
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/wsgate/wsgate"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run() error {
	srv, err := wsgate.NewServer(nil, &wsgate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln) // ends when the process does

	nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		return err
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", ln.Addr())
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake answered %s", resp.Status)
	}
	// FIN + binary; masked, 64-bit length 0x8000000000000000; the mask key.
	if _, err := nc.Write([]byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}); err != nil {
		return err
	}
	var h [4]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return fmt.Errorf("reading the close frame: %w", err)
	}
	if h[0] != 0x88 || h[1] < 2 || h[1] > 125 {
		return fmt.Errorf("want a close frame with a code, got header % x", h[:2])
	}
	fmt.Println(binary.BigEndian.Uint16(h[2:]))
	return nil
}
