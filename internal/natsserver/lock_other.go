//go:build !unix

package natsserver

import "os"

// lockDir creates dir if needed. Where flock(2) does not exist the directory is not locked:
// the operator must give each node its own.
func lockDir(dir string) (*os.File, error) { return openLockFile(dir) }
