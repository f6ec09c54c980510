//go:build unix

package natsserver

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockDir creates dir if needed and locks it for this process: a second node started on the
// same data directory would corrupt the JetStream store, so it is refused. The lock is released
// when the returned file is closed, or when the process dies.
func lockDir(dir string) (*os.File, error) {
	f, err := openLockFile(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("nats server: data directory %s is in use by another node (each node needs its own)", dir)
		}
		return nil, fmt.Errorf("nats server: lock data directory %s: %w", dir, err)
	}
	return f, nil
}
