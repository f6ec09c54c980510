package natsserver

import (
	"fmt"
	"os"
	"path/filepath"
)

// openLockFile creates dir if needed and opens the lock file in it; lockDir locks it where the
// system can.
func openLockFile(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nats server: data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "wsgate.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nats server: data directory: %w", err)
	}
	return f, nil
}
