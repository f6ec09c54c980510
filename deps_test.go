package wsgate_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyFence keeps the connection runtime on the standard library and its transport:
// nothing else may enter the root package's imports (STYLE.md, practice 15).
func TestDependencyFence(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "github.com/wsgate/wsgate",
			strings.HasPrefix(p, "github.com/lxzan/gws"),
			strings.HasPrefix(p, "github.com/klauspost/compress"), // gws's permessage-deflate
			strings.HasPrefix(p, "github.com/dolthub/maphash"):    // gws's internals
		default:
			t.Errorf("root package depends on %s", p)
		}
	}
}
