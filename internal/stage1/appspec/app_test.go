package appspec

import (
	"errors"
	"reflect"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestNewAppSpec(t *testing.T) {
	tests := []struct {
		name      string
		app       *types.App
		want      AppSpec
		wantClass error
	}{
		{
			name: "full",
			app: &types.App{
				Exec: types.Exec{"/bin/sh", "-c", "true"}, User: "app", Group: "app", SupplementaryGIDs: []int{5},
				WorkingDirectory: "/work/", Environment: types.Environment{{Name: "A", Value: "1"}},
				EventHandlers: []types.EventHandler{
					{Name: "pre-start", Exec: types.Exec{"/bin/pre"}},
					{Name: "post-stop", Exec: types.Exec{"/bin/post", "x"}},
				},
			},
			want: AppSpec{
				Name: "web", Exec: []string{"/bin/sh", "-c", "true"}, User: "app", Group: "app", SupplementaryGIDs: []int{5},
				WorkingDir: "/work", Env: []string{"PATH=" + DefaultPath, "A=1", "AC_APP_NAME=web", "container=nscn"},
				PreStart: []string{"/bin/pre"}, PostStop: []string{"/bin/post", "x"},
			},
		},
		{
			name: "working dir defaults to root",
			app:  &types.App{Exec: types.Exec{"true"}, User: "0", Group: "0"},
			want: AppSpec{
				Name: "web", Exec: []string{"true"}, User: "0", Group: "0", WorkingDir: "/",
				Env: []string{"PATH=" + DefaultPath, "AC_APP_NAME=web", "container=nscn"},
			},
		},
		{name: "no exec", app: &types.App{User: "0", Group: "0"}, wantClass: errdefs.ErrInvalidArgument},
		{name: "relative working dir", app: &types.App{Exec: types.Exec{"true"}, User: "0", Group: "0", WorkingDirectory: "work"}, wantClass: errdefs.ErrInvalidArgument},
		{name: "empty handler", app: &types.App{Exec: types.Exec{"true"}, User: "0", Group: "0", EventHandlers: []types.EventHandler{{Name: "pre-start"}}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "nul byte", app: &types.App{Exec: types.Exec{"true", "a\x00b"}, User: "0", Group: "0"}, wantClass: errdefs.ErrInvalidArgument},
		{name: "no app", app: nil, wantClass: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra := testApp(t, "web", tt.app)
			got, err := NewAppSpec(&ra, EnvOptions{})
			if tt.wantClass != nil {
				if !errors.Is(err, tt.wantClass) {
					t.Fatalf("NewAppSpec error = %v, want class %v", err, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewAppSpec: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NewAppSpec =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}
