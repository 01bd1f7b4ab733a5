package fly

import (
	"errors"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestSingleApp(t *testing.T) {
	app := &types.App{Exec: types.Exec{"true"}, User: "0", Group: "0"}
	tests := []struct {
		name      string
		apps      []string
		lookup    string
		wantClass error
	}{
		{name: "one app", apps: []string{"web"}, lookup: "web"},
		{name: "no app", apps: nil, wantClass: errdefs.ErrInvalidArgument},
		{name: "two apps", apps: []string{"a", "b"}, wantClass: errdefs.ErrNotImplemented},
		{name: "other name", apps: []string{"web"}, lookup: "db", wantClass: errdefs.ErrNotFound},
		{name: "invalid name", apps: []string{"web"}, lookup: "Not/Valid", wantClass: errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm := testPod(t, nil, nil)
			for _, n := range tt.apps {
				pm.Apps = append(pm.Apps, testApp(t, n, app))
			}
			var err error
			if tt.lookup != "" {
				_, err = AppByName(pm, tt.lookup)
			} else {
				_, err = SingleApp(pm)
			}
			if tt.wantClass == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantClass != nil && !errors.Is(err, tt.wantClass) {
				t.Fatalf("error = %v, want class %v", err, tt.wantClass)
			}
		})
	}
}
