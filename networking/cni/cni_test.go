package cni

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) { t.Helper(); testutil.Golden(t, name, got) }

func TestBuiltInGolden(t *testing.T) {
	tests := []struct {
		name     string
		net      string
		dataDir  string
		portmap  bool
		golden   string
		wantType []string
	}{
		{name: "default", net: NetDefault, golden: "default.conflist", wantType: []string{"ptp"}},
		{name: "default restricted", net: NetDefaultRestricted, golden: "default-restricted.conflist", wantType: []string{"ptp"}},
		{name: "default with data dir", net: NetDefault, dataDir: "/var/lib/nscn/cni", golden: "default-datadir.conflist", wantType: []string{"ptp"}},
		{name: "default with ports", net: NetDefault, portmap: true, golden: "default-portmap.conflist", wantType: []string{"ptp", "portmap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := BuiltIn(tt.net, tt.dataDir)
			if !ok {
				t.Fatalf("BuiltIn(%q) not found", tt.net)
			}
			if tt.portmap {
				var err error
				if n, err = n.WithPortMap(); err != nil {
					t.Fatal(err)
				}
				if !n.HasCapability("portMappings") {
					t.Fatal("no portMappings capability after WithPortMap")
				}
				again, err := n.WithPortMap()
				if err != nil || len(again.List.Plugins) != len(n.List.Plugins) {
					t.Fatalf("WithPortMap twice chained portmap twice: %v", err)
				}
			}
			if got := n.Types(); !slices.Equal(got, tt.wantType) {
				t.Fatalf("types = %v, want %v", got, tt.wantType)
			}
			golden(t, tt.golden, n.Bytes())
		})
	}
	if _, ok := BuiltIn("mynet", ""); ok {
		t.Fatal("BuiltIn(mynet) found")
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoader(t *testing.T) {
	local, system := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(local, NetDir, "10-br.conflist"), `{"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge","bridge":"br9"},{"type":"portmap","capabilities":{"portMappings":true}}]}`)
	writeFile(t, filepath.Join(local, NetDir, "20-br.conflist"), `{"cniVersion":"1.0.0","name":"br","plugins":[{"type":"ignored"}]}`)
	writeFile(t, filepath.Join(local, NetDir, "README"), `not a config`)
	writeFile(t, filepath.Join(system, NetDir, "10-br.conf"), `{"cniVersion":"1.0.0","name":"br","type":"system"}`)
	writeFile(t, filepath.Join(system, NetDir, "30-single.conf"), `{"cniVersion":"0.4.0","name":"single","type":"macvlan","ipam":{"type":"host-local"}}`)
	writeFile(t, filepath.Join(system, NetDir, "40-default.conflist"), `{"cniVersion":"1.1.0","name":"default","plugins":[{"type":"bridge"}]}`)
	l := Loader{LocalConfig: local, SystemConfig: system}

	tests := []struct {
		name      string
		net       string
		wantTypes []string
		wantClass error
	}{
		{name: "local wins and first file wins", net: "br", wantTypes: []string{"bridge", "portmap"}},
		{name: "single conf is wrapped", net: "single", wantTypes: []string{"macvlan"}},
		{name: "user network overrides built-in", net: "default", wantTypes: []string{"bridge"}},
		{name: "built-in", net: "default-restricted", wantTypes: []string{"ptp"}},
		{name: "unknown", net: "nope", wantClass: errdefs.ErrNotFound},
		{name: "invalid name", net: "../x", wantClass: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := l.Load(tt.net)
			if tt.wantClass != nil {
				if !errors.Is(err, tt.wantClass) {
					t.Fatalf("Load(%q) = %v, want class %v", tt.net, err, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := n.Types(); !slices.Equal(got, tt.wantTypes) {
				t.Fatalf("types = %v, want %v", got, tt.wantTypes)
			}
		})
	}
	names, err := l.Names()
	if err != nil || !slices.Equal(names, []string{"br", "default", "default-restricted", "single"}) {
		t.Fatalf("Names() = %v, %v", names, err)
	}
}

func TestLoaderBadConfigs(t *testing.T) {
	tests := []struct {
		name, file, content string
	}{
		{name: "malformed json", file: "a.conflist", content: `{"cniVersion":"1.0.0","name":"bad",`},
		{name: "no plugins", file: "a.conflist", content: `{"cniVersion":"1.0.0","name":"bad","plugins":[]}`},
		{name: "plugin without type", file: "a.conflist", content: `{"cniVersion":"1.0.0","name":"bad","plugins":[{"ipMasq":true}]}`},
		{name: "no version", file: "a.conflist", content: `{"name":"bad","plugins":[{"type":"ptp"}]}`},
		{name: "future version", file: "a.conflist", content: `{"cniVersion":"9.0.0","name":"bad","plugins":[{"type":"ptp"}]}`},
		{name: "bad name", file: "a.conf", content: `{"cniVersion":"1.0.0","name":"bad name","type":"ptp"}`},
		{name: "conf without type", file: "a.conf", content: `{"cniVersion":"1.0.0","name":"bad"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, NetDir, tt.file), tt.content)
			_, err := Loader{LocalConfig: dir}.Load("bad")
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Load = %v, want an invalid-argument error", err)
			}
		})
	}
}

func TestWithPortMapOldVersion(t *testing.T) {
	n, err := Parse([]byte(`{"cniVersion":"0.2.0","name":"old","type":"ptp"}`), false, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.WithPortMap(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("WithPortMap on 0.2.0 = %v, want invalid argument", err)
	}
}

func TestCheckPlugins(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ptp"), "#!/bin/sh\n")
	n, _ := BuiltIn(NetDefault, "")
	if err := CheckPlugins(n, []string{dir}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("CheckPlugins without host-local = %v, want not found", err)
	}
	writeFile(t, filepath.Join(dir, "host-local"), "#!/bin/sh\n")
	if err := CheckPlugins(n, []string{dir}); err != nil {
		t.Fatalf("CheckPlugins = %v", err)
	}
}

func TestRecords(t *testing.T) {
	pod := t.TempDir()
	n, _ := BuiltIn(NetDefault, "")
	res := `{"cniVersion":"1.1.0","interfaces":[{"name":"veth1"},{"name":"eth0","sandbox":"/run/netns/nscn-x"}],"ips":[{"interface":1,"address":"172.16.28.5/24","gateway":"172.16.28.1"}]}`
	recs := []*Record{
		{Version: RecordVersion, Name: "second", Index: 1, IfName: "eth1", ContainerID: "x", Config: n.Bytes()},
		{Version: RecordVersion, Name: "default", Index: 0, IfName: "eth0", ContainerID: "x", Config: n.Bytes(), Result: json.RawMessage(res)},
	}
	for _, r := range recs {
		if err := WriteRecord(pod, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadRecords(pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "default" || got[1].Name != "second" {
		t.Fatalf("ReadRecords order = %v", got)
	}
	pr, err := got[0].ParsedResult()
	if err != nil {
		t.Fatal(err)
	}
	ips := PodIPs(pr, "eth0")
	if len(ips) != 1 || ips[0].String() != "172.16.28.5/24" {
		t.Fatalf("PodIPs = %v", ips)
	}
	if err := RemoveRecord(pod, "second"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveRecord(pod, "second"); err != nil {
		t.Fatalf("second RemoveRecord: %v", err)
	}
	if got, _ := ReadRecords(pod); len(got) != 1 {
		t.Fatalf("after remove: %d records", len(got))
	}
}

func TestParseRecordErrors(t *testing.T) {
	n, _ := BuiltIn(NetDefault, "")
	good := Record{Version: RecordVersion, Name: "default", IfName: "eth0", ContainerID: "x", Config: n.Bytes()}
	mk := func(f func(r *Record)) []byte {
		r := good
		f(&r)
		b, _ := json.Marshal(r)
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{name: "not json", data: []byte("{")},
		{name: "wrong version", data: mk(func(r *Record) { r.Version = 2 })},
		{name: "bad name", data: mk(func(r *Record) { r.Name = "a/b" })},
		{name: "no config", data: mk(func(r *Record) { r.Config = nil })},
		{name: "bad config", data: mk(func(r *Record) { r.Config = json.RawMessage(`{"name":"x"}`) })},
		{name: "bad result", data: mk(func(r *Record) { r.Result = json.RawMessage(`{"ips":[{"interface":3,"address":"10.0.0.1/8"}]}`) })},
		{name: "result without address", data: mk(func(r *Record) { r.Result = json.RawMessage(`{"ips":[{}]}`) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseRecord(tt.data); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseRecord = %v, want invalid argument", err)
			}
		})
	}
	if _, err := ParseRecord(mk(func(*Record) {})); err != nil {
		t.Fatalf("good record: %v", err)
	}
}

func FuzzParseResult(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"interface":0,"address":"172.16.28.5/24","gateway":"172.16.28.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}`))
	f.Add([]byte(`{"ips":[{"interface":-1,"address":"10.0.0.1/8"}]}`))
	f.Add([]byte(`{"interfaces":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseResult(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for _, ifName := range []string{"eth0", ""} {
			_ = PodIPs(res, ifName)
		}
		if _, err := res.MarshalJSON(); err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	n, _ := BuiltIn(NetDefault, "")
	good, _ := json.Marshal(Record{
		Version: RecordVersion, Name: "default", IfName: "eth0", ContainerID: "x", Config: n.Bytes(),
		Result: json.RawMessage(`{"cniVersion":"1.1.0","ips":[{"address":"172.16.28.5/24"}]}`),
	})
	f.Add(good)
	f.Add([]byte(`{"version":1,"name":"x","ifName":"eth0","containerID":"c","config":{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"ptp"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if _, err := Parse(r.Config, true, "fuzz"); err != nil {
			t.Fatalf("accepted record has a bad config: %v", err)
		}
		_ = r.PluginPaths("/pod")
	})
}

func FuzzParseConfig(f *testing.F) {
	n, _ := BuiltIn(NetDefault, "")
	f.Add(n.Bytes(), true)
	f.Add([]byte(`{"cniVersion":"0.4.0","name":"single","type":"macvlan"}`), false)
	f.Fuzz(func(t *testing.T, data []byte, list bool) {
		n, err := Parse(data, list, "fuzz")
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if _, err := Parse(n.Bytes(), true, "again"); err != nil {
			t.Fatalf("reparse of accepted config: %v", err)
		}
		if pm, err := n.WithPortMap(); err == nil && !pm.HasCapability("portMappings") {
			t.Fatal("WithPortMap lost the capability")
		}
	})
}
