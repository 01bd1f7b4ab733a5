package apphelper

import (
	"fmt"
	"net"
	"strings"
)

// DialNotify connects to the sd_notify socket addr (a path, or "@" and an
// abstract name).
func DialNotify(addr string) (*net.UnixConn, error) {
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return nil, fmt.Errorf("notify %s: not a unix socket address", addr)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify %s: %w", addr, err)
	}
	return c, nil
}
