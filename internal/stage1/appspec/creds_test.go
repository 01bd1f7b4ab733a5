package appspec

import (
	"errors"
	"reflect"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/nosecone/nscn/internal/errdefs"
)

func credsFS() fstest.MapFS {
	return fstest.MapFS{
		"etc/passwd": {Data: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n" +
			"2000:x:3000:3000:numeric name:/:/bin/sh\n")},
		"etc/group":    {Data: []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app\n")},
		"usr/bin/ping": {Data: []byte("#!"), Mode: 0o4755, Sys: &syscall.Stat_t{Uid: 7, Gid: 8}},
	}
}

func TestResolveCreds(t *testing.T) {
	tests := []struct {
		name         string
		fs           fstest.MapFS
		user, group  string
		supplemental []int
		want         Creds
		wantErr      bool
		wantClass    error // checked when set
	}{
		{name: "names", user: "app", group: "staff", want: Creds{UID: 1000, GID: 50}},
		{name: "numeric ids", user: "1234", group: "5678", want: Creds{UID: 1234, GID: 5678}},
		{name: "names win over numbers", user: "2000", group: "0", want: Creds{UID: 3000, GID: 0}},
		{name: "owner of a file", user: "/usr/bin/ping", group: "/usr/bin/ping", want: Creds{UID: 7, GID: 8}},
		{name: "supplementary gids", user: "root", group: "root", supplemental: []int{10, 20}, want: Creds{Groups: []uint32{10, 20}}},
		{name: "no passwd file numeric", fs: fstest.MapFS{}, user: "5", group: "6", want: Creds{UID: 5, GID: 6}},
		{name: "no passwd file name", fs: fstest.MapFS{}, user: "app", group: "0", wantErr: true, wantClass: errdefs.ErrNotFound},
		{name: "unknown user", user: "nobody", group: "0", wantErr: true, wantClass: errdefs.ErrNotFound},
		{name: "unknown group", user: "0", group: "nogroup", wantErr: true, wantClass: errdefs.ErrNotFound},
		{name: "host user is not used", user: "daemon", group: "0", wantErr: true, wantClass: errdefs.ErrNotFound},
		{name: "id out of range", user: "4294967295", group: "0", wantErr: true, wantClass: errdefs.ErrNotFound},
		{name: "missing owner file", user: "/nope", group: "0", wantErr: true},
		{name: "empty user", user: "", group: "0", wantErr: true, wantClass: errdefs.ErrInvalidArgument},
		{name: "negative supplementary gid", user: "0", group: "0", supplemental: []int{-1}, wantErr: true, wantClass: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := tt.fs
			if fsys == nil {
				fsys = credsFS()
			}
			got, err := ResolveCreds(fsys, tt.user, tt.group, tt.supplemental)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ResolveCreds = %+v, want an error", got)
				}
				if tt.wantClass != nil && !errors.Is(err, tt.wantClass) {
					t.Fatalf("ResolveCreds error = %v, want class %v", err, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveCreds: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolveCreds = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	fsys := fstest.MapFS{
		"bin/sh":         {Data: []byte{}, Mode: 0o755},
		"usr/bin/tool":   {Data: []byte{}, Mode: 0o755},
		"usr/bin/noexec": {Data: []byte{}, Mode: 0o644},
		"work/run.sh":    {Data: []byte{}, Mode: 0o755},
		"bin/dir":        {Mode: 0o755 | 1<<31},
	}
	tests := []struct {
		name, file, path, dir string
		want                  string
		wantErr               bool
	}{
		{name: "absolute", file: "/bin/sh", path: "", dir: "/", want: "/bin/sh"},
		{name: "search path", file: "tool", path: "/bin:/usr/bin", dir: "/", want: "/usr/bin/tool"},
		{name: "first match", file: "sh", path: "/bin:/usr/bin", dir: "/", want: "/bin/sh"},
		{name: "relative with slash", file: "./run.sh", path: "/bin", dir: "/work", want: "/work/run.sh"},
		{name: "empty path entry is the working dir", file: "run.sh", path: "/bin::", dir: "/work", want: "/work/run.sh"},
		{name: "not executable is skipped", file: "noexec", path: "/usr/bin", dir: "/", wantErr: true},
		{name: "not executable absolute", file: "/usr/bin/noexec", dir: "/", wantErr: true},
		{name: "directory", file: "/bin/dir", dir: "/", wantErr: true},
		{name: "missing", file: "nope", path: "/bin", dir: "/", wantErr: true},
		{name: "empty", file: "", dir: "/", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LookPath(fsys, tt.file, tt.path, tt.dir)
			if (err != nil) != tt.wantErr {
				t.Fatalf("LookPath(%q) = %q, %v; wantErr %v", tt.file, got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("LookPath(%q) = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
}

func TestCheckDir(t *testing.T) {
	fsys := fstest.MapFS{"work/f": {Data: []byte{}}}
	tests := []struct {
		name, dir string
		wantErr   bool
	}{
		{name: "root", dir: "/"},
		{name: "dir", dir: "/work"},
		{name: "file", dir: "/work/f", wantErr: true},
		{name: "missing", dir: "/nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckDir(fsys, tt.dir); (err != nil) != tt.wantErr {
				t.Errorf("CheckDir(%q) = %v, wantErr %v", tt.dir, err, tt.wantErr)
			}
		})
	}
}
