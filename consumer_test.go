package wsgate_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsumerGetsTheFixedTransport builds testdata/consumer as a separate module that requires
// github.com/wsgate/wsgate, with the replace directive in the consumer's go.mod pointing at this
// checkout: exactly what an importer gets, for whom wsgate's own replace directives would not apply.
// The program sends the 14-byte frame that panicked upstream gws; the fix must reach it: 1002.
// It runs offline from the module cache: the consumer's go.sum is wsgate's.
func TestConsumerGetsTheFixedTransport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "consumer", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	mod := "module example.com/consumer\n\ngo 1.26\n\nrequire github.com/wsgate/wsgate v0.0.0\n\n" +
		"replace github.com/wsgate/wsgate => " + root + "\n"
	for name, data := range map[string][]byte{"main.go": src, "go.sum": sum, "go.mod": []byte(mod)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gocmd := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return string(out)
	}
	for _, p := range strings.Fields(gocmd("list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")) {
		if strings.HasPrefix(p, "github.com/lxzan/gws") {
			t.Errorf("the consumer builds with upstream %s", p)
		}
	}
	if code := strings.TrimSpace(gocmd("run", ".")); code != "1002" {
		t.Errorf("the consumer's server answered the 14-byte frame with close code %s, want 1002", code)
	}
}
