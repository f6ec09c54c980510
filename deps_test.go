package wsgate_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyFence keeps the connection runtime on the standard library and its transport, the
// patched copy of gws in internal/gws: nothing else may enter the root package's imports (STYLE.md,
// practice 15).
func TestDependencyFence(t *testing.T) {
	out := goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	for _, p := range strings.Fields(out) {
		switch {
		case p == "github.com/wsgate/wsgate",
			p == "github.com/wsgate/wsgate/internal/gws",
			p == "github.com/wsgate/wsgate/internal/gws/internal",
			strings.HasPrefix(p, "github.com/klauspost/compress"), // gws's permessage-deflate
			strings.HasPrefix(p, "github.com/dolthub/maphash"):    // gws's internals
		default:
			t.Errorf("root package depends on %s", p)
		}
	}
}

// TestNATSOnlyInItsBroker: nats.go is imported by broker/nats alone (its tests aside), so that
// everything else reaches NATS through the broker.Broker seam (STYLE.md, practice 15). The one
// other is internal/natsserver, the embedded NATS server: it hands the broker its in-process
// connection as a nats.go option.
func TestNATSOnlyInItsBroker(t *testing.T) {
	out := goList(t, "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		if pkg == "github.com/wsgate/wsgate/broker/nats" || pkg == "github.com/wsgate/wsgate/internal/natsserver" {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "github.com/nats-io/nats.go") {
				t.Errorf("%s imports %s; only broker/nats may", pkg, imp)
			}
		}
	}
}

// yardsticks are the packages that measure upstream gws on purpose: the raw-gws echo server of the
// benchmarks is what a user of gws runs, so it must not get wsgate's fixes.
var yardsticks = map[string]bool{
	"github.com/wsgate/wsgate/internal/echoserver":    true,
	"github.com/wsgate/wsgate/internal/cmd/echobench": true,
	"github.com/wsgate/wsgate/internal/cmd/echoserve": true,
}

// TestOnlyYardsticksUseUpstreamGWS: everything else, all that a user imports or installs among
// it, builds with internal/gws, whose fixes upstream gws lacks (internal/gws/PATCHES.md).
func TestOnlyYardsticksUseUpstreamGWS(t *testing.T) {
	out := goList(t, "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		if yardsticks[pkg] {
			continue
		}
		for _, d := range strings.Fields(deps) {
			if strings.HasPrefix(d, "github.com/lxzan/gws") {
				t.Errorf("%s builds with upstream %s; import github.com/wsgate/wsgate/internal/gws", pkg, d)
			}
		}
	}
}

// TestGoModHasNoReplace: a replace directive applies only when this module is the main module, so
// importers and `go install github.com/wsgate/wsgate/cmd/wsgate@version` would not see it (go
// install even refuses a module that has one). What the module needs must travel inside it.
func TestGoModHasNoReplace(t *testing.T) {
	out, err := exec.Command("go", "mod", "edit", "-json").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var mod struct {
		Replace []struct{ Old, New struct{ Path string } }
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	for _, r := range mod.Replace {
		t.Errorf("go.mod replaces %s with %s", r.Old.Path, r.New.Path)
	}
}

// goList runs go list with args and returns its output.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return string(out)
}

// TestPrometheusOnlyInTheBinary: the library counts with atomics (ARCHITECTURE.md,
// "Observability"); client_golang is imported by internal/metrics alone, which the binary uses.
func TestPrometheusOnlyInTheBinary(t *testing.T) {
	out := goList(t, "-deps", "-f", "{{.ImportPath}}", ".", "./hub", "./gateway/...", "./broker/...")
	for _, p := range strings.Fields(out) {
		if strings.HasPrefix(p, "github.com/prometheus/") || p == "github.com/wsgate/wsgate/internal/metrics" {
			t.Errorf("a library package depends on %s", p)
		}
	}
}
