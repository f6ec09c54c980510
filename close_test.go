package wsgate_test

import (
	"testing"

	"github.com/wsgate/wsgate"
)

// TestCloseCodeReconnectable pins the close-code policy that the JS client (RECONNECT_CODES,
// shouldReconnect) and the CLI's exit statuses share: test/web/client.test.js lists the same codes.
func TestCloseCodeReconnectable(t *testing.T) {
	reconnect := []wsgate.CloseCode{1001, 1005, 1006, 1011, 1012, 1013, 1014, 4500, 4999}
	terminal := []wsgate.CloseCode{1000, 1002, 1003, 1004, 1007, 1008, 1009, 1010, 1015, 2000, 3000, 3999, 4000, 4499, 5000, -1}
	for _, c := range reconnect {
		if !c.Reconnectable() {
			t.Errorf("%d: terminal, want reconnect", c)
		}
	}
	for _, c := range terminal {
		if c.Reconnectable() {
			t.Errorf("%d: reconnect, want terminal", c)
		}
	}
}
