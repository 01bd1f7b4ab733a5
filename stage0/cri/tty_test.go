package cri

import (
	"errors"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestRefuseTTY(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler string
		hostPID bool
		tty     bool
		want    error
	}{
		{name: "default handler", handler: "", tty: true},
		{name: "nspawn", handler: "nspawn", tty: true},
		{name: "kvm", handler: "kvm", tty: true, want: errdefs.ErrNotImplemented},
		{name: "kvm without tty", handler: "kvm"},
		{name: "host PID", handler: "nspawn", hostPID: true, tty: true, want: errdefs.ErrNotImplemented},
		{name: "host PID without tty", handler: "nspawn", hostPID: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := refuseTTY(&sandbox{meta: sandboxMeta{RuntimeHandler: tt.handler, HostPID: tt.hostPID}}, tt.tty)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("refuseTTY(%q, %v) = %v, want %v", tt.handler, tt.tty, err, tt.want)
			}
		})
	}
}
