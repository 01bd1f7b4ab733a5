package apps

import (
	"errors"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/prepare"
)

func TestRefuseTTY(t *testing.T) {
	withTTY := func(v string) prepare.App {
		return prepare.App{Name: "a", Annotations: types.Annotations{{Name: stage1abi.AnnotationAppTTY, Value: v}}}
	}
	for _, tt := range []struct {
		name    string
		app     prepare.App
		version int
		refused bool
	}{
		{name: "tty, new stage1", app: withTTY("true"), version: stage1abi.InterfaceVersionAppTTY},
		{name: "tty, older stage1", app: withTTY("true"), version: stage1abi.InterfaceVersionAppPID1, refused: true},
		{name: "false, older stage1", app: withTTY("false"), version: stage1abi.InterfaceVersionApps},
		{name: "no annotation, older stage1", app: prepare.App{Name: "a"}, version: stage1abi.InterfaceVersionApps},
		{name: "a bad value, older stage1", app: withTTY("yes"), version: stage1abi.InterfaceVersionApps, refused: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := refuseTTY(tt.app, tt.version)
			if tt.refused != (err != nil) || (err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition)) {
				t.Fatalf("refuseTTY(version %d) = %v, refused %v", tt.version, err, tt.refused)
			}
		})
	}
}
