package jwtauth_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyFence keeps jwtauth a leaf: the standard library, jwt/v5 and the wire protocol
// (with the broker types it names), never the hub or the connection runtime, so that anything
// may use it and it never drags a server along.
func TestDependencyFence(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch p {
		case "github.com/wsgate/wsgate/gateway/jwtauth", "github.com/golang-jwt/jwt/v5",
			"github.com/wsgate/wsgate/protocol", "github.com/wsgate/wsgate/broker":
		default:
			t.Errorf("jwtauth depends on %s", p)
		}
	}
}
