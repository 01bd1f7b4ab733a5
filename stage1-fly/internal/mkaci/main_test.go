package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/appc/spec/schema"
)

func TestManifest(t *testing.T) {
	tests := []struct {
		name     string
		goarch   string
		wantArch string
		wantErr  bool
	}{
		{name: "amd64", goarch: "amd64", wantArch: "amd64"},
		{name: "arm64 is aarch64", goarch: "arm64", wantArch: "aarch64"},
		{name: "unknown", goarch: "mips", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := Manifest("1.2.3", tt.goarch)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Manifest error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			// The manifest must be valid for the appc schema both ways.
			data, err := json.Marshal(im)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			var back schema.ImageManifest
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if back.App != nil {
				t.Error("a stage1 image must have no app")
			}
			if v, _ := back.GetLabel("arch"); v != tt.wantArch {
				t.Errorf("arch label = %q, want %q", v, tt.wantArch)
			}
			if v, _ := back.GetLabel("version"); v != "1.2.3" {
				t.Errorf("version label = %q", v)
			}
			want := map[string]string{
				"coreos.com/rkt/stage1/run":               "/fly/run",
				"coreos.com/rkt/stage1/enter":             "/fly/enter",
				"coreos.com/rkt/stage1/gc":                "/fly/gc",
				"coreos.com/rkt/stage1/stop":              "/fly/stop",
				"coreos.com/rkt/stage1/interface-version": "6",
			}
			got := map[string]string{}
			for _, a := range back.Annotations {
				got[a.Name.String()] = a.Value
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("annotations = %v, want %v", got, want)
			}
		})
	}
}

func TestWriteACIDeterministic(t *testing.T) {
	dir := t.TempDir()
	for p, mode := range map[string]os.FileMode{"rootfs/fly/run": 0o700, "rootfs/fly/gc": 0o755, "rootfs/fly/README": 0o600} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := WriteACI(&a, dir, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	// A touched file must not change the archive.
	if err := os.Chtimes(filepath.Join(dir, "rootfs/fly/gc"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := WriteACI(&b, dir, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two archives of the same tree differ")
	}

	zr, err := gzip.NewReader(&a)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: owner %d:%d mtime %v, want 0:0 at the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		got = append(got, h.Name+" "+os.FileMode(h.Mode).String()) //nolint:gosec // G115: a tar mode from our own archive
	}
	want := []string{
		"manifest -rw-r--r--",
		"rootfs/ -rwxr-xr-x",
		"rootfs/fly/ -rwxr-xr-x",
		"rootfs/fly/README -rw-r--r--",
		"rootfs/fly/gc -rwxr-xr-x",
		"rootfs/fly/run -rwxr-xr-x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries =\n%q\nwant\n%q", got, want)
	}
}

func TestSourceDateEpoch(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
		wantErr  bool
	}{
		{name: "unset", in: "", want: 0},
		{name: "set", in: "1700000000", want: 1700000000},
		{name: "garbage", in: "yesterday", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sourceDateEpoch(tt.in)
			if (err != nil) != tt.wantErr || (err == nil && got.Unix() != tt.want) {
				t.Errorf("sourceDateEpoch(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}
