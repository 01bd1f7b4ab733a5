package cri

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/stage0/fetch"
	"github.com/nosecone/nscn/store"
)

func TestParseRefAndDisplay(t *testing.T) {
	tests := []struct {
		in, repo, tag, digest string
		bad                   bool
	}{
		{in: "busybox", repo: "docker.io/library/busybox", tag: "latest"},
		{in: "docker.io/library/busybox:1.36", repo: "docker.io/library/busybox", tag: "1.36"},
		{in: "registry.k8s.io/pause:3.10", repo: "registry.k8s.io/pause", tag: "3.10"},
		{in: "127.0.0.1:5000/team/app:v1", repo: "127.0.0.1:5000/team/app", tag: "v1"},
		{in: "gcr.io/x/y@sha256:" + strings.Repeat("ab", 32), repo: "gcr.io/x/y", digest: "sha256:" + strings.Repeat("ab", 32)},
		{in: "", bad: true},
		{in: "docker://busybox", bad: true},
		{in: "oci:/tmp/layout", bad: true},
		{in: "UPPER/case", bad: true},
		{in: "busybox:-bad", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := parseRef(tt.in)
			if tt.bad {
				if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("parseRef(%q) = %v, %v; want an invalid-argument error", tt.in, r, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := displayRepo(r.Name.Context()); got != tt.repo {
				t.Errorf("repository %q, want %q", got, tt.repo)
			}
			if r.Tag() != tt.tag || (tt.digest != "" && r.Digest.String() != tt.digest) {
				t.Errorf("tag %q digest %q, want %q %q", r.Tag(), r.Digest, tt.tag, tt.digest)
			}
		})
	}
}

func TestCRIImageUser(t *testing.T) {
	tests := []struct {
		user     string
		uid      int64
		username string
	}{
		{"0", 0, ""},
		{"1002", 1002, ""},
		{"www-data", -1, "www-data"},
	}
	for _, tt := range tests {
		ci := (&image{id: "sha256:x", user: tt.user}).criImage()
		switch {
		case tt.uid >= 0 && (ci.GetUid() == nil || ci.GetUid().GetValue() != tt.uid || ci.GetUsername() != ""):
			t.Errorf("user %q: uid %v username %q", tt.user, ci.GetUid(), ci.GetUsername())
		case tt.uid < 0 && (ci.GetUid() != nil || ci.GetUsername() != tt.username):
			t.Errorf("user %q: uid %v username %q", tt.user, ci.GetUid(), ci.GetUsername())
		}
	}
}

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
	}{
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.Join(errors.New("get manifest"), context.Canceled), codes.Canceled},
		{errdefs.NotFound("x"), codes.NotFound},
		{errdefs.InvalidArgument("x"), codes.InvalidArgument},
		{errdefs.FailedPrecondition("not pinned"), codes.FailedPrecondition},
		{errdefs.Unavailable("x"), codes.Unavailable},
		{errors.New("plain"), codes.Unknown},
		{status.Error(codes.Aborted, "kept"), codes.Aborted},
	}
	for _, tt := range tests {
		if got := status.Code(toStatus(tt.err)); got != tt.code {
			t.Errorf("toStatus(%v) code %v, want %v", tt.err, got, tt.code)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "cri.sock")
	l, path, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if path != sock {
		t.Fatalf("path %q, want %q", path, sock)
	}
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v mode %v, want 0600", err, st.Mode().Perm())
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	if _, _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Fatalf("a second listener on a live socket: %v", err)
	}
	// Closed without removal, as a killed server leaves it: taken over.
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	_ = l.Close()
	l2, _, err := Listen(sock)
	if err != nil {
		t.Fatalf("a stale socket is not replaced: %v", err)
	}
	_ = l2.Close()

	notSock := filepath.Join(dir, "file")
	if err := os.WriteFile(notSock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"relative.sock", "tcp://127.0.0.1:1", "unix://", notSock} {
		if _, _, err := Listen(bad); err == nil {
			t.Errorf("Listen(%q) succeeded", bad)
		}
	}
}

// TestEmptyStore: an empty store lists nothing, finds nothing, and
// removing an image nothing names succeeds (the CRI's idempotence).
func TestEmptyStore(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{DataDir: dir, Store: st, NewFetcher: func() *fetch.Fetcher { return &fetch.Fetcher{Store: st} }, NscnArgs: []string{"/bin/false"}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.ListImages(ctx, &runtimeapi.ListImagesRequest{}); err != nil || len(r.GetImages()) != 0 {
		t.Fatalf("ListImages = %v, %v", r, err)
	}
	for _, ref := range []string{"busybox", "sha256:" + strings.Repeat("0", 64), strings.Repeat("1", 64)} {
		if r, err := s.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil || r.GetImage() != nil {
			t.Errorf("ImageStatus(%s) = %v, %v; want no image and no error", ref, r, err)
		}
		if _, err := s.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Errorf("RemoveImage(%s) = %v; want success", ref, err)
		}
	}
	if _, err := s.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "docker://x"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a reference with a transport: %v, want InvalidArgument", err)
	}
	if _, err := s.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ""}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an empty pull: %v, want InvalidArgument", err)
	}
	fs, err := s.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.GetImageFilesystems()) != 1 || fs.GetImageFilesystems()[0].GetInodesUsed().GetValue() == 0 {
		t.Fatalf("ImageFsInfo = %v, %v", fs, err)
	}
	v, err := s.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil || v.GetRuntimeName() != RuntimeName || v.GetRuntimeApiVersion() != "v1" {
		t.Fatalf("Version = %v, %v", v, err)
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"busybox", "registry.k8s.io/pause:3.10", "a.io:5000/x/y@sha256:" + strings.Repeat("0", 64), "docker://x", "UP"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRef(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("parseRef(%q): error of another kind: %v", s, err)
			}
			return
		}
		// What parses names a repository and a tag or a digest, and its
		// display form parses to the same repository.
		repo := displayRepo(r.Name.Context())
		if r.Tag() == "" && !r.Pinned() {
			t.Fatalf("parseRef(%q): neither tag nor digest", s)
		}
		again, err := parseRef(repo + ":latest")
		if err != nil || displayRepo(again.Name.Context()) != repo {
			t.Fatalf("display form %q of %q does not parse back: %v", repo, s, err)
		}
	})
}

func TestIDs(t *testing.T) {
	uuid := "2e581b29-b57d-4f22-94f7-218afb7eb339"
	sb := sandboxID(uuid)
	if sb != "2e581b29b57d4f2294f7218afb7eb339" || podUUID(sb) != uuid {
		t.Fatalf("sandboxID %q, podUUID back %q", sb, podUUID(sb))
	}
	ctr := sb + strings.Repeat("ab", 16)
	if podUUID(ctr) != uuid || appName(ctr) != "c"+strings.Repeat("ab", 10) {
		t.Fatalf("container %q: pod %q app %q", ctr, podUUID(ctr), appName(ctr))
	}
	for _, bad := range []string{"", "short", strings.ToUpper(sb), sb[:31] + "g", sb + "zz"} {
		if podUUID(bad) != "" && len(bad) == 32 {
			t.Errorf("podUUID(%q) = %q", bad, podUUID(bad))
		}
		if appName(bad) != "" {
			t.Errorf("appName(%q) = %q", bad, appName(bad))
		}
	}
}

func TestLabelsMatch(t *testing.T) {
	have := map[string]string{"app": "web", "tier": "front"}
	tests := []struct {
		want map[string]string
		ok   bool
	}{
		{nil, true},
		{map[string]string{"app": "web"}, true},
		{map[string]string{"app": "web", "tier": "front"}, true},
		{map[string]string{"app": "db"}, false},
		{map[string]string{"zone": ""}, false},
		{map[string]string{"zone": "a"}, false},
	}
	for _, tt := range tests {
		if got := labelsMatch(have, tt.want); got != tt.ok {
			t.Errorf("labelsMatch(%v) = %v, want %v", tt.want, got, tt.ok)
		}
	}
}
