package sdpod

import (
	"bytes"
	"slices"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/stage1/appmount"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/units"
)

func TestNotifyReady(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want bool
	}{
		{name: "ready with a newline", msg: "READY=1\n", want: true},
		{name: "ready without a newline", msg: "READY=1", want: true},
		{name: "among other lines", msg: "STATUS=Container running: Ready.\nREADY=1\nERRNO=0\n", want: true},
		{name: "status only", msg: "STATUS=Container running: User job app-a.service/start running (2s / 1min 30s)..."},
		{name: "ready in a status text", msg: "STATUS=READY=1"},
		{name: "ready 0", msg: "READY=0\n"},
		{name: "last assignment wins", msg: "READY=1\nREADY=0\n"},
		{name: "stopping", msg: "STOPPING=1\n"},
		{name: "with spaces", msg: "READY = 1\n"},
		{name: "empty", msg: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotifyReady([]byte(tt.msg)); got != tt.want {
				t.Errorf("NotifyReady(%q) = %v, want %v", tt.msg, got, tt.want)
			}
		})
	}
}

func TestNotifySocket(t *testing.T) {
	s := NotifySocket(testUUID)
	if s[0] != '@' {
		t.Fatalf("NotifySocket = %q, want an abstract socket name", s)
	}
	// sun_path holds 108 bytes, the leading NUL of an abstract name
	// included.
	if len(s) > 107 {
		t.Fatalf("NotifySocket = %q is longer than a socket address", s)
	}
}

func FuzzNotifyReady(f *testing.F) {
	for _, s := range []string{"READY=1\n", "STATUS=x\nREADY=1", "READY=0", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if NotifyReady(msg) && !bytes.Contains(msg, []byte("READY=1")) {
			t.Fatalf("NotifyReady(%q) is true without READY=1", msg)
		}
	})
}

func TestSupportsNotify(t *testing.T) {
	tests := []struct {
		name string
		ann  types.Annotations
		want bool
	}{
		{name: "none"},
		{name: "true", ann: types.Annotations{{Name: NotifyAnnotation, Value: "true"}}, want: true},
		{name: "false", ann: types.Annotations{{Name: NotifyAnnotation, Value: "false"}}},
		{name: "other annotation", ann: types.Annotations{{Name: "authors", Value: "true"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SupportsNotify(&schema.ImageManifest{Annotations: tt.ann}); got != tt.want {
				t.Fatalf("SupportsNotify = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEnableNotify: the app gets NOTIFY_SOCKET and the socket, bound at
// the same path, after its other mounts.
func TestEnableNotify(t *testing.T) {
	a := App{Spec: appspec.AppSpec{Env: []string{"A=1"}}, Plan: appmount.Plan{Mounts: []appmount.Mount{{Kind: appmount.KindFS, Target: "/proc"}}}}
	EnableNotify(&a)
	if !a.Notify || !slices.Equal(a.Spec.Env, []string{"A=1", "NOTIFY_SOCKET=/run/systemd/notify"}) {
		t.Fatalf("after EnableNotify: notify %v, env %q", a.Notify, a.Spec.Env)
	}
	last := a.Plan.Mounts[len(a.Plan.Mounts)-1]
	if len(a.Plan.Mounts) != 2 || last.Kind != appmount.KindBind || last.Source != AppNotifySocket || last.Target != AppNotifySocket {
		t.Fatalf("mounts %+v", a.Plan.Mounts)
	}
}

func TestSocketPorts(t *testing.T) {
	app := &types.App{Ports: []types.Port{
		{Name: "http", Protocol: "tcp", Port: 80, Count: 1},
		{Name: "dns", Protocol: "udp", Port: 53, Count: 2, SocketActivated: true},
	}}
	got := SocketPorts(app)
	want := []units.Socket{{Name: "dns", Protocol: "udp", Port: 53, Count: 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("SocketPorts = %+v, want %+v", got, want)
	}
}
