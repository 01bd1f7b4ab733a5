package guest

import (
	"bytes"
	"encoding/json"
	"path"
	"testing"

	"github.com/nosecone/nscn/internal/stage1/sdmanager"
)

func TestParseControlRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "start", in: `{"nonce":"1","op":"StartUnit","unit":"app-web.service"}`, ok: true},
		{name: "load", in: `{"nonce":"1","op":"load-state","unit":"app-web.service"}`, ok: true},
		{name: "bind", in: `{"nonce":"1","op":"bind-entries","dirs":["/nscn/host/app/web"]}`, ok: true},
		{name: "unmount", in: `{"nonce":"1","op":"unmount","dirs":["/opt/stage2/web","/nscn/host/app/web"]}`, ok: true},
		{name: "not json", in: `start`},
		{name: "unknown op", in: `{"op":"KillUnit","unit":"app-web.service"}`},
		{name: "not an app's unit", in: `{"op":"StopUnit","unit":"systemd-journald.service"}`},
		{name: "unit with a slash", in: `{"op":"StopUnit","unit":"app-../x.service"}`},
		{name: "unit op with dirs", in: `{"op":"StopUnit","unit":"app-web.service","dirs":["/opt/stage2/web"]}`},
		{name: "dir outside", in: `{"op":"unmount","dirs":["/etc"]}`},
		{name: "dir escaping", in: `{"op":"unmount","dirs":["/opt/stage2/../../etc"]}`},
		{name: "the stage2 dir itself", in: `{"op":"unmount","dirs":["/opt/stage2/"]}`},
		{name: "bind two dirs", in: `{"op":"bind-entries","dirs":["/nscn/host/app/a","/nscn/host/app/b"]}`},
		{name: "no dirs", in: `{"op":"unmount"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseControlRequest([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseControlRequest(%s) = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

// TestControlFrames: a request goes out as one FrameControl and its reply
// comes back as one FrameControlReply, as the host's control() and the
// agent exchange them.
func TestControlFrames(t *testing.T) {
	req := ControlRequest{Nonce: "ab", Op: sdmanager.OpStop, Unit: "app-web.service"}
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteFrame(&b, FrameControl, data); err != nil {
		t.Fatal(err)
	}
	typ, p, err := ReadFrame(&b)
	if err != nil || typ != FrameControl {
		t.Fatalf("ReadFrame = %q, %v", typ, err)
	}
	got, err := ParseControlRequest(p)
	if err != nil || got.Nonce != req.Nonce || got.Op != req.Op || got.Unit != req.Unit {
		t.Fatalf("request read back as %+v, %v", got, err)
	}
}

func FuzzParseControlRequest(f *testing.F) {
	f.Add([]byte(`{"nonce":"1","op":"StartUnit","unit":"app-web.service"}`))
	f.Add([]byte(`{"nonce":"1","op":"unmount","dirs":["/opt/stage2/web","/nscn/host/app/web"]}`))
	f.Add([]byte(`{"op":"bind-entries","dirs":["/nscn/host/app/x/../../.."]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseControlRequest(in)
		if err != nil {
			return
		}
		for _, d := range r.Dirs {
			if !bytes.HasPrefix([]byte(d), []byte("/opt/stage2/")) && !bytes.HasPrefix([]byte(d), []byte(HostBindDir+"/app/")) {
				t.Fatalf("accepted directory %q outside an app's", d)
			}
			if path.Clean(d) != d {
				t.Fatalf("accepted directory %q that is not clean", d)
			}
		}
		if r.Unit != "" && bytes.ContainsAny([]byte(r.Unit), "/\x00") {
			t.Fatalf("accepted unit %q", r.Unit)
		}
	})
}
