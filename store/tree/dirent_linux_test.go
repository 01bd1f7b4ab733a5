package tree

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// direntRecord encodes one linux_dirent64 record, padded to 8 bytes.
func direntRecord(ino uint64, typ uint8, name string) []byte {
	n := (direntNameOff + len(name) + 1 + 7) &^ 7
	b := make([]byte, n)
	binary.NativeEndian.PutUint64(b[direntInoOff:], ino)
	binary.NativeEndian.PutUint16(b[direntReclenOff:], uint16(n)) //nolint:gosec // G115: test names are short
	b[direntTypeOff] = typ
	copy(b[direntNameOff:], name)
	return b
}

func TestParseDirents(t *testing.T) {
	good := slices.Concat(direntRecord(2, unix.DT_DIR, "."), direntRecord(1, unix.DT_DIR, ".."),
		direntRecord(12, unix.DT_REG, "file"), direntRecord(13, unix.DT_LNK, "a-rather-longer-name"),
		direntRecord(14, unix.DT_UNKNOWN, "x"))
	tests := []struct {
		name    string
		buf     []byte
		want    []dirent
		wantErr string
	}{
		{name: "empty", buf: nil},
		{name: "dot entries skipped", buf: good, want: []dirent{
			{name: "file", ino: 12, typ: unix.DT_REG},
			{name: "a-rather-longer-name", ino: 13, typ: unix.DT_LNK},
			{name: "x", ino: 14, typ: unix.DT_UNKNOWN},
		}},
		{name: "truncated record", buf: good[:len(good)-3], wantErr: "record length"},
		{name: "short of a header", buf: good[:10], wantErr: "short of a record"},
		{name: "zero record length", buf: make([]byte, 24), wantErr: "record length 0"},
		{name: "name without NUL", buf: func() []byte {
			b := direntRecord(3, unix.DT_REG, "abcde") // 19+6 = 25, padded to 32
			for i := direntNameOff; i < len(b); i++ {
				b[i] = 'a'
			}
			return b
		}(), wantErr: "terminating NUL"},
		{name: "empty name", buf: direntRecord(3, unix.DT_REG, ""), wantErr: "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDirents(tt.buf, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDirents = %v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("parseDirents = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseDirents: any buffer gives entries or an error, never a panic,
// and the entries are those of the records that fit.
func FuzzParseDirents(f *testing.F) {
	f.Add(slices.Concat(direntRecord(1, unix.DT_DIR, "."), direntRecord(12, unix.DT_REG, "file")))
	f.Add(direntRecord(7, unix.DT_LNK, "l"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, err := parseDirents(b, nil)
		if err != nil {
			return
		}
		for _, e := range ents {
			if e.name == "" || e.name == "." || e.name == ".." || strings.ContainsRune(e.name, 0) {
				t.Fatalf("entry %+v", e)
			}
		}
	})
}

// TestReadDirents: a real listing gives every name once, with its inode
// number and type as lstat reports them.
func TestReadDirents(t *testing.T) {
	dir := t.TempDir()
	want := map[string]uint8{}
	for i := range 300 { // more than one getdents buffer
		name := fmt.Sprintf("%s-%03d", strings.Repeat("n", 40), i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = unix.DT_REG
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	want["sub"] = unix.DT_DIR
	if err := os.Symlink("nowhere", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	want["link"] = unix.DT_LNK
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	ents, err := readDirents(fd, make([]byte, 1024))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(want) {
		t.Fatalf("%d entries, want %d", len(ents), len(want))
	}
	for _, e := range ents {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.name), &st); err != nil {
			t.Fatal(err)
		}
		typ := e.typ
		if typ == unix.DT_UNKNOWN {
			typ = direntType(st.Mode)
		}
		if typ != want[e.name] || typ != direntType(st.Mode) {
			t.Errorf("%s: type %d, want %d", e.name, typ, want[e.name])
		}
		if direntInos(fd) && e.ino != st.Ino {
			t.Errorf("%s: inode %d in the listing, %d by lstat", e.name, e.ino, st.Ino)
		}
	}
}
