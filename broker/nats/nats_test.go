package nats

import (
	"fmt"
	"testing"

	"github.com/wsgate/wsgate/broker"
	"github.com/wsgate/wsgate/hub/brokertest"
)

func TestConformance(t *testing.T) {
	s := runServer(t, "", 0)
	n := 0
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		n++ // a stream and a prefix per test: they share the server
		return newBroker(t, s, Options{Stream: fmt.Sprintf("T%d", n), Prefix: fmt.Sprintf("t%d", n), HistorySize: 10})
	})
}

func TestNamespacesConformance(t *testing.T) {
	s := runServer(t, "", 0)
	n := 0
	brokertest.RunNamespaces(t, func(t *testing.T, ns []broker.Namespace) broker.Broker {
		n++
		return newBroker(t, s, Options{Stream: fmt.Sprintf("N%d", n), Prefix: fmt.Sprintf("n%d", n), HistorySize: 10, Namespaces: ns})
	})
}
