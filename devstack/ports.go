package devstack

import (
	"fmt"
	"net"
	"time"
)

// freePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before the broker binds it; the test helpers retry a
// start that fails that way on new ports.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devstack: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portOpen reports whether something accepts TCP connections at addr.
func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
