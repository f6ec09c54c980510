//go:build !linux

package wsgate_test

import "net"

// unread cannot tell how many bytes wait in nc's receive buffer here.
func unread(net.Conn) int { return -1 }
