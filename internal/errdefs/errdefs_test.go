package errdefs

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestWithKeepsCauseAndClass(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		class error
		msg   string
	}{
		{name: "plain", err: NotFound("image %q", "x"), class: ErrNotFound, msg: `image "x"`},
		{name: "wrapped cause", err: fmt.Errorf("open store: %w", With(ErrUnavailable, fs.ErrPermission)), class: ErrUnavailable, msg: "open store: permission denied"},
		{name: "invalid", err: InvalidArgument("bad %d", 1), class: ErrInvalidArgument, msg: "bad 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.class) {
				t.Fatalf("errors.Is(%v, %v) = false", tt.err, tt.class)
			}
			if got := tt.err.Error(); got != tt.msg {
				t.Fatalf("message = %q, want %q", got, tt.msg)
			}
		})
	}
	if !errors.Is(With(ErrUnavailable, fs.ErrPermission), fs.ErrPermission) {
		t.Fatal("cause lost")
	}
	if With(ErrNotFound, nil) != nil {
		t.Fatal("With(nil) must stay nil")
	}
}
