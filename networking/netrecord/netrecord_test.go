package netrecord

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

var good = Record{
	Version: Version, Name: "default", Index: 0, IfName: "eth0", ContainerID: "x",
	Config: json.RawMessage(`{"cniVersion":"1.0.0","name":"default","plugins":[{"type":"ptp"}]}`),
	Result: json.RawMessage(`{"cniVersion":"1.1.0","interfaces":[{"name":"veth1"},{"name":"eth0","sandbox":"/x"}],"ips":[{"interface":0,"address":"172.16.28.1/24"},{"interface":1,"address":"172.16.28.5/24"},{"address":"fd00::5/64"}]}`),
}

func marshal(t testing.TB, f func(r *Record)) []byte {
	t.Helper()
	r := good
	f(&r)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *Record)
		ok   bool
	}{
		{name: "good", edit: func(*Record) {}, ok: true},
		{name: "no result yet", edit: func(r *Record) { r.Result = nil }, ok: true},
		// The configuration is the cni package's to check.
		{name: "config not checked", edit: func(r *Record) { r.Config = json.RawMessage(`{"name":"x"}`) }, ok: true},
		{name: "wrong version", edit: func(r *Record) { r.Version = 2 }},
		{name: "bad name", edit: func(r *Record) { r.Name = "a/b" }},
		{name: "no interface", edit: func(r *Record) { r.IfName = "" }},
		{name: "no container", edit: func(r *Record) { r.ContainerID = "" }},
		{name: "no config", edit: func(r *Record) { r.Config = nil }},
		{name: "interface out of range", edit: func(r *Record) {
			r.Result = json.RawMessage(`{"ips":[{"interface":3,"address":"10.0.0.1/8"}]}`)
		}},
		{name: "null interface", edit: func(r *Record) { r.Result = json.RawMessage(`{"interfaces":[null]}`) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(marshal(t, tt.edit))
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Parse = %v, want success", err)
			case !tt.ok && !errors.Is(err, errdefs.ErrInvalidArgument):
				t.Fatalf("Parse = %v, want invalid argument", err)
			}
		})
	}
	if _, err := Parse([]byte("{")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Parse of broken JSON = %v, want invalid argument", err)
	}
}

// PodIPs keeps the pod's own interface and unbound addresses, not the
// host side of the veth.
func TestPodIPs(t *testing.T) {
	r, err := Parse(marshal(t, func(*Record) {}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.ParsedResult()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range PodIPs(res, "eth0") {
		got = append(got, a.String())
	}
	want := []string{"172.16.28.5/24", "fd00::5/64"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("PodIPs = %q, want %q", got, want)
	}
}

func TestRead(t *testing.T) {
	pod := t.TempDir()
	if recs, err := Read(pod, Parse); err != nil || recs != nil {
		t.Fatalf("Read without net-info = %v, %v; want none", recs, err)
	}
	dir := filepath.Join(pod, stage1abi.NetInfoDir)
	if err := os.MkdirAll(filepath.Join(dir, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	second := marshal(t, func(r *Record) { r.Name, r.Index, r.IfName = "other", 1, "eth1" })
	for name, data := range map[string][]byte{
		"other.json":    second,
		"default.json":  marshal(t, func(*Record) {}),
		".tmp-123":      []byte("{"), // a write in progress
		"notes.txt":     []byte("x"),
		".hidden.json":  []byte("{"),
		"cache/x.json":  []byte("{"),
		"default.jsonx": []byte("{"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := Read(pod, Parse)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Name != "default" || recs[1].Name != "other" {
		t.Fatalf("Read = %+v, want default then other", recs)
	}
	// A record stored under another network's name is refused.
	if err := os.WriteFile(filepath.Join(dir, "third.json"), second, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(pod, Parse); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Read of a misnamed record = %v, want invalid argument", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(marshal(f, func(*Record) {}))
	f.Add([]byte(`{"version":1,"name":"x","ifName":"eth0","containerID":"c","config":{}}`))
	f.Add([]byte(`{"version":1,"name":"x","ifName":"eth0","containerID":"c","config":{},"result":{"ips":[{"interface":-1,"address":"10.0.0.1/8"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		res, err := r.ParsedResult()
		if err != nil {
			t.Fatalf("accepted record has a bad result: %v", err)
		}
		if res != nil {
			_ = PodIPs(res, r.IfName)
		}
	})
}
