package gateway_test

import (
	"context"
	"testing"
)

// The backend API is the application's own: its presence and history are answered where the
// namespace offers clients none (docs/API.md).
func TestAPIPresenceAndHistoryIgnoreNamespaceSwitches(t *testing.T) {
	s := start(t, namespacesConfig(), nil)
	ctx := context.Background()
	if _, err := s.gw.Node().Presence(ctx, "quiet:room", "", 10); err != nil {
		t.Errorf("API presence on quiet: (presence off for clients): %v", err)
	}
	if _, err := s.gw.Node().Publish(ctx, "nohist:room", []byte(`1`), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.gw.Node().History(ctx, "nohist:room", nil, 10); err != nil {
		t.Errorf("API history on nohist: (history off for clients): %v", err)
	}
}
