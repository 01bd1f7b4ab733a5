//go:build !linux

package cni

import (
	"errors"
	"net"
)

func teardownIPMasq([]*net.IPNet, string, string, string) error {
	return errors.New("ip masquerading needs Linux")
}
