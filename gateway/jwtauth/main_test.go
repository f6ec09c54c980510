package jwtauth_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package on a leaked goroutine: the JWKS refresher must stop with Close or
// its context.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
