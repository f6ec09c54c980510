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
