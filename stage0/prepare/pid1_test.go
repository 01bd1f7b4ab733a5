package prepare

import (
	"errors"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestCheckAppPID1(t *testing.T) {
	withPID1 := func(v string) *schema.PodManifest {
		pm := schema.BlankPodManifest()
		ra := schema.RuntimeApp{Name: *types.MustACName("web")}
		if v != "" {
			ra.Annotations.Set(stage1abi.AnnotationAppPID1, v)
		}
		pm.Apps = append(pm.Apps, ra)
		return pm
	}
	tests := []struct {
		name    string
		pm      *schema.PodManifest
		version int
		err     error
	}{
		{name: "no annotation, old stage1", pm: withPID1(""), version: stage1abi.InterfaceVersionIPC},
		{name: "false, old stage1", pm: withPID1("false"), version: stage1abi.InterfaceVersionMountOptions},
		{name: "true, old stage1", pm: withPID1("true"), version: stage1abi.InterfaceVersionMountOptions, err: errdefs.ErrFailedPrecondition},
		{name: "garbage, old stage1", pm: withPID1("yes"), version: stage1abi.InterfaceVersionIPC, err: errdefs.ErrFailedPrecondition},
		{name: "true, new stage1", pm: withPID1("true"), version: stage1abi.InterfaceVersionAppPID1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAppPID1(tt.pm, "stage1-test", tt.version)
			if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("checkAppPID1 = %v, want %v", err, tt.err)
			}
		})
	}
}
