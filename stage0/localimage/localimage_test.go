package localimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/discovery"
	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/oci"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
)

// writeACI writes an uncompressed ACI named name into dir.
func writeACI(t *testing.T, dir, name string) string {
	t.Helper()
	var buf bytes.Buffer
	m := fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q,"labels":[{"name":"version","value":"1.0"}]}`, name)
	aw, err := aci.NewWriter(&buf, []byte(m), aci.WriteOptions{ModTime: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := aw.Add(&tar.Header{Name: "rootfs", Mode: 0o755, Typeflag: tar.TypeDir}, strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".aci")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// importFile imports path as fetch.Fetcher does a local file: with its
// remote record, signed by signedBy ("" for an unverified import).
func importFile(t *testing.T, s *store.Store, path, signedBy string) *index.Image {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) //nolint:gosec // G304: the test's own file
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	im, err := s.Import(t.Context(), f, store.ImportOptions{
		Source: path,
		Remote: &index.Remote{URL: FileKey(path), ETag: FileValidator(st), DownloadTime: time.Now().UTC()},
		Check:  func(_ context.Context, _ *schema.ImageManifest) (string, error) { return signedBy, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestResolver: what the store holds is answered as fetch.Fetcher answers
// it, and everything else is ErrNotStored (or the error the fetcher would
// give without looking further).
func TestResolver(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(t.Context(), filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	signedFile := writeACI(t, dir, "example.com/signed")
	plainFile := writeACI(t, dir, "example.com/plain")
	changedFile := writeACI(t, dir, "example.com/changed")
	newFile := writeACI(t, dir, "example.com/new")
	signed := importFile(t, s, signedFile, "key")
	plain := importFile(t, s, plainFile, "")
	importFile(t, s, changedFile, "key")
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(changedFile, later, later); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		req      Request
		policy   PullPolicy
		insecure bool
		want     *index.Image
		wantErr  error
	}{
		{name: "image ID", req: Request{Ref: signed.ID}, want: signed},
		{name: "unknown image ID", req: Request{Ref: "sha512-" + strings.Repeat("0", 64)}, wantErr: errdefs.ErrNotFound},
		{name: "stored name", req: Request{Ref: "example.com/signed"}, want: signed},
		{name: "stored name and version", req: Request{Ref: "example.com/signed:1.0"}, want: signed},
		{name: "stored name, pull policy never", req: Request{Ref: "example.com/signed"}, policy: PullNever, want: signed},
		{name: "stored name, pull policy update", req: Request{Ref: "example.com/signed"}, policy: PullUpdate, wantErr: ErrNotStored},
		{name: "name not stored", req: Request{Ref: "example.com/other"}, wantErr: ErrNotStored},
		{name: "name not stored, pull policy never", req: Request{Ref: "example.com/other"}, policy: PullNever, wantErr: errdefs.ErrNotFound},
		{name: "the request's pull policy wins", req: Request{Ref: "example.com/other", PullPolicy: PullNever}, policy: PullUpdate, wantErr: errdefs.ErrNotFound},
		{name: "bad name", req: Request{Ref: "Example.com/a:b:c"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "signed file unchanged", req: Request{Ref: signedFile}, want: signed},
		{name: "signed file as file URL", req: Request{Ref: "file://" + signedFile}, want: signed},
		{name: "unsigned file, signature asked", req: Request{Ref: plainFile}, wantErr: ErrNotStored},
		{name: "unsigned file, --insecure-options=image", req: Request{Ref: plainFile}, insecure: true, want: plain},
		{name: "unsigned file, trusted stage1", req: Request{Ref: plainFile, Trusted: true}, want: plain},
		{name: "file, pull policy never", req: Request{Ref: signedFile}, policy: PullNever, wantErr: errdefs.ErrFailedPrecondition},
		{name: "file changed since its import", req: Request{Ref: changedFile}, wantErr: ErrNotStored},
		{name: "file never imported", req: Request{Ref: newFile}, wantErr: ErrNotStored},
		{name: "missing file", req: Request{Ref: filepath.Join(dir, "missing.aci")}, wantErr: errdefs.ErrNotFound},
		{name: "https URL", req: Request{Ref: "https://example.com/app.aci"}, wantErr: ErrNotStored},
		{name: "docker image", req: Request{Ref: "docker://busybox"}, wantErr: ErrNotStored},
		{name: "OCI layout", req: Request{Ref: "oci:" + dir}, wantErr: ErrNotStored},
		{name: "unknown scheme", req: Request{Ref: "ftp://example.com/app.aci"}, wantErr: errdefs.ErrNotImplemented},
		{name: "empty", req: Request{}, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			policy := tc.policy
			if policy == "" {
				policy = PullNew
			}
			r := &Resolver{Store: s, PullPolicy: policy, InsecureImage: tc.insecure}
			got, err := r.Fetch(t.Context(), tc.req)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Fetch(%+v) = %v, %v; want %v", tc.req, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.ID != tc.want.ID {
				t.Fatalf("Fetch(%+v) = %v, %v; want %s", tc.req, got, err, tc.want.ID)
			}
		})
	}
}

// TestResolverSaysWhereFrom: an image answered from a file is announced as
// fetch.Fetcher announces it, and one handed over is not (nscn-fetch
// says it then).
func TestResolverSaysWhereFrom(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(t.Context(), filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	stored := writeACI(t, dir, "example.com/stored")
	importFile(t, s, stored, "key")
	fresh := writeACI(t, dir, "example.com/fresh")
	var buf bytes.Buffer
	r := &Resolver{Store: s, PullPolicy: PullNew, Log: slog.New(slog.NewTextHandler(&buf, nil))}
	if _, err := r.Fetch(t.Context(), Request{Ref: stored}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Fetch(t.Context(), Request{Ref: fresh}); !errors.Is(err, ErrNotStored) {
		t.Fatalf("fresh file: %v, want ErrNotStored", err)
	}
	if got := buf.String(); !strings.Contains(got, "using image from file "+stored) || strings.Contains(got, fresh) {
		t.Errorf("log = %q, want the stored file's line alone", got)
	}
}

func TestParsePullPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "new", in: "new", ok: true},
		{name: "update", in: "update", ok: true},
		{name: "never", in: "never", ok: true},
		{name: "unknown", in: "always"},
		{name: "empty", in: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePullPolicy(tc.in)
			if tc.ok != (err == nil) || (tc.ok && string(p) != tc.in) {
				t.Errorf("ParsePullPolicy(%q) = %q, %v", tc.in, p, err)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not InvalidArgument", err)
			}
		})
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantName   string
		wantLabels map[string]string
		wantErr    bool
	}{
		{name: "name alone", in: "example.com/app", wantName: "example.com/app", wantLabels: map[string]string{}},
		{name: "version", in: "example.com/app:1.0", wantName: "example.com/app", wantLabels: map[string]string{"version": "1.0"}},
		{name: "labels", in: "example.com/app,version=1.0,channel=alpha", wantName: "example.com/app", wantLabels: map[string]string{"version": "1.0", "channel": "alpha"}},
		{name: "os and arch written", in: "example.com/app,os=linux,arch=amd64", wantName: "example.com/app", wantLabels: map[string]string{"os": "linux", "arch": "amd64"}},
		{name: "colon after a comma", in: "example.com/app,a=b:c", wantErr: true},
		{name: "two colons", in: "example.com/app:1:2", wantErr: true},
		{name: "label twice", in: "example.com/app,a=b,a=c", wantErr: true},
		{name: "bad name", in: "Example.com/App", wantErr: true},
		{name: "bad label name", in: "example.com/app,A=b", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, labels, err := ParseName(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseName(%q) = %q, %v; want an error", tc.in, name, labels)
				}
				return
			}
			if err != nil || name != tc.wantName || !maps.Equal(labels, tc.wantLabels) {
				t.Errorf("ParseName(%q) = %q, %v, %v; want %q, %v", tc.in, name, labels, err, tc.wantName, tc.wantLabels)
			}
		})
	}
}

// FuzzParseName holds ParseName to appc's parser: same name and labels (os
// and arch only when written), an error for the same inputs.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"example.com/app", "example.com/app:1.0", "example.com/app,version=1.0,os=linux", "a:b:c", "a,b=c:d", "a,b=%zz", "a,b=c,b=d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, labels, err := ParseName(in)
		app, appErr := discovery.NewAppFromString(in)
		if (err == nil) != (appErr == nil) {
			t.Fatalf("ParseName(%q) error %v, appc's %v", in, err, appErr)
		}
		if err != nil {
			return
		}
		want := map[string]string{}
		for k, v := range app.Labels {
			if (k == "os" || k == "arch") && !strings.Contains(in, k.String()+"=") {
				continue
			}
			want[k.String()] = v
		}
		if name != app.Name.String() || !maps.Equal(labels, want) {
			t.Errorf("ParseName(%q) = %q, %v; appc's %q, %v", in, name, labels, app.Name, want)
		}
	})
}

// FuzzIsOCIReference holds IsOCIReference to package oci's IsReference.
func FuzzIsOCIReference(f *testing.F) {
	for _, s := range []string{"docker://busybox", "docker:busybox", "oci:/dir", "oci-archive:f.tar", "docker-archive:f.tar:a:b", "/a.aci", "https://x", "example.com/app:1.0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if got, want := IsOCIReference(in), oci.IsReference(in); got != want {
			t.Errorf("IsOCIReference(%q) = %v, oci.IsReference %v", in, got, want)
		}
	})
}
