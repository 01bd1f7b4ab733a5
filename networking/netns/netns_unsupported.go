//go:build !linux

package netns

import (
	"context"
	"errors"
)

var errUnsupported = errors.New("network namespaces need Linux")

// New is not supported on this platform.
func New(context.Context, string) error { return errUnsupported }

// Remove is not supported on this platform.
func Remove(string) error { return errUnsupported }

// IsNetNS is not supported on this platform.
func IsNetNS(string) (bool, error) { return false, errUnsupported }

// Do is not supported on this platform.
func Do(context.Context, string, func() error) error { return errUnsupported }
