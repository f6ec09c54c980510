package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/gateway"
)

// docs/CONFIG.md documents every setting: each flag with its variable and file key, and each
// key of the gateway's sections.
func TestConfigDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	o := defaultOptions()
	newFlagSet(&o).VisitAll(func(f *flag.Flag) {
		key := f.Name
		if k := gatewayKeyOf(f.Name); k != "" {
			key = k
		} else if f.Name == "config" {
			key = "—"
		}
		row := "| `" + key + "` | `-" + f.Name + "` | `" + envName(f.Name) + "` |"
		if key == "—" {
			row = "| — | `-config` | `WSGATE_CONFIG` |"
		}
		if !strings.Contains(doc, row) {
			t.Errorf("docs/CONFIG.md has no row %q", row)
		}
	})
	for _, k := range gateway.Keys() {
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/CONFIG.md does not document the key %s", k)
		}
	}
	for _, s := range gatewaySecrets {
		if !strings.Contains(doc, "| `"+s.key+"` | `"+s.env+"` |") {
			t.Errorf("docs/CONFIG.md does not give %s for %s", s.env, s.key)
		}
	}
}
