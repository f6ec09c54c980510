package broker_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeaf keeps the broker seam a leaf: the interface package and the brokers depend on the
// standard library and the interface only, never on the hub or the WebSocket transport
// (ARCHITECTURE.md, "Broker seam").
func TestLeaf(t *testing.T) {
	for _, pkg := range []string{"github.com/wsgate/wsgate/broker", "github.com/wsgate/wsgate/broker/memory"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep != pkg && dep != "github.com/wsgate/wsgate/broker" {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}

// TestNATSBrokerIsALeaf: broker/nats adds nats.go (and what nats.go needs) and nothing of this
// module but the interface package.
func TestNATSBrokerIsALeaf(t *testing.T) {
	const pkg = "github.com/wsgate/wsgate/broker/nats"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != pkg && dep != "github.com/wsgate/wsgate/broker" && strings.HasPrefix(dep, "github.com/wsgate/wsgate") {
			t.Errorf("%s depends on %s", pkg, dep)
		}
		if strings.HasPrefix(dep, "github.com/nats-io/nats-server") {
			t.Errorf("%s depends on the NATS server; only its tests may", pkg)
		}
	}
}
