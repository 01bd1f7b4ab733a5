package mountplan

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseMountInfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []MountInfo
		wantErr bool
	}{
		{
			name: "proc(5) example",
			in:   "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
			want: []MountInfo{{
				ID: 36, ParentID: 35, Major: 98, Minor: 0, Root: "/mnt1", MountPoint: "/mnt2",
				Options: "rw,noatime", Optional: []string{"master:1"}, FSType: "ext3", Source: "/dev/root",
				SuperOptions: "rw,errors=continue",
			}},
		},
		{
			name: "no optional fields, several optional fields",
			in: "21 26 0:20 / /proc rw,relatime - proc proc rw\n" +
				"99 21 0:50 / /run rw shared:3 master:2 propagate_from:1 - tmpfs tmpfs rw,size=10k\n",
			want: []MountInfo{
				{ID: 21, ParentID: 26, Major: 0, Minor: 20, Root: "/", MountPoint: "/proc", Options: "rw,relatime", FSType: "proc", Source: "proc", SuperOptions: "rw"},
				{ID: 99, ParentID: 21, Major: 0, Minor: 50, Root: "/", MountPoint: "/run", Options: "rw", Optional: []string{"shared:3", "master:2", "propagate_from:1"}, FSType: "tmpfs", Source: "tmpfs", SuperOptions: "rw,size=10k"},
			},
		},
		{
			name: "octal escapes",
			in:   `40 26 254:0 /a\040b /pods/my\040pod/x\011y\012z\134w rw - overlay over\040lay rw,lowerdir=/l` + "\n",
			want: []MountInfo{{
				ID: 40, ParentID: 26, Major: 254, Minor: 0, Root: "/a b", MountPoint: "/pods/my pod/x\ty\nz\\w",
				Options: "rw", FSType: "overlay", Source: "over lay", SuperOptions: "rw,lowerdir=/l",
			}},
		},
		{
			name: "deleted mount point",
			in:   `41 26 0:60 / /tmp/gone\040(deleted) rw - tmpfs tmpfs rw` + "\n",
			want: []MountInfo{{ID: 41, ParentID: 26, Major: 0, Minor: 60, Root: "/", MountPoint: "/tmp/gone (deleted)", Options: "rw", FSType: "tmpfs", Source: "tmpfs", SuperOptions: "rw"}},
		},
		{
			name: "empty source",
			in:   "42 26 0:61 / /f rw - fuse.x  rw\n",
			want: []MountInfo{{ID: 42, ParentID: 26, Major: 0, Minor: 61, Root: "/", MountPoint: "/f", Options: "rw", FSType: "fuse.x", SuperOptions: "rw"}},
		},
		{name: "empty input", in: "", want: nil},
		{name: "blank lines", in: "\n\n", want: nil},
		{name: "no separator", in: "1 2 0:1 / / rw ext4 /dev/x rw\n", wantErr: true},
		{name: "separator too early", in: "1 2 0:1 / - rw ext4 /dev/x rw\n", wantErr: true},
		{name: "missing super options", in: "1 2 0:1 / / rw - ext4 /dev/x\n", wantErr: true},
		{name: "extra field", in: "1 2 0:1 / / rw - ext4 /dev/x rw extra\n", wantErr: true},
		{name: "bad id", in: "x 2 0:1 / / rw - ext4 /dev/x rw\n", wantErr: true},
		{name: "negative parent", in: "1 -2 0:1 / / rw - ext4 /dev/x rw\n", wantErr: true},
		{name: "bad device", in: "1 2 01 / / rw - ext4 /dev/x rw\n", wantErr: true},
		{name: "truncated escape", in: `1 2 0:1 / /a\04 rw - ext4 /dev/x rw` + "\n", wantErr: true},
		{name: "non-octal escape", in: `1 2 0:1 / /a\089 rw - ext4 /dev/x rw` + "\n", wantErr: true},
		{name: "escape out of range", in: `1 2 0:1 / /a\777 rw - ext4 /dev/x rw` + "\n", wantErr: true},
		{name: "empty mount point", in: "1 2 0:1 /  rw - ext4 /dev/x rw\n", wantErr: true},
		{name: "huge id", in: "99999999999999999999999 2 0:1 / / rw - ext4 /dev/x rw\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMountInfo(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseMountInfo error = %v, wantErr %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMountInfo =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseMountInfoLongLine(t *testing.T) {
	long := "/" + strings.Repeat("x", 200000)
	in := fmt.Sprintf("1 2 0:1 / %s rw - tmpfs tmpfs rw\n", long)
	got, err := ParseMountInfo(strings.NewReader(in))
	if err != nil || len(got) != 1 || got[0].MountPoint != long {
		t.Fatalf("long line: %v", err)
	}
	tooLong := fmt.Sprintf("1 2 0:1 / /%s rw - tmpfs tmpfs rw\n", strings.Repeat("x", maxMountInfoLine))
	if _, err := ParseMountInfo(strings.NewReader(tooLong)); err == nil {
		t.Fatal("a line over the bound was accepted")
	}
}

// escapeField is the kernel's escaping of a path field (mangle() in
// fs/proc_namespace.c): space, tab, newline and backslash.
func escapeField(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// formatMountInfo writes mi back as a mountinfo line.
func formatMountInfo(mi MountInfo) string {
	f := []string{
		fmt.Sprint(mi.ID), fmt.Sprint(mi.ParentID), fmt.Sprintf("%d:%d", mi.Major, mi.Minor),
		escapeField(mi.Root), escapeField(mi.MountPoint), mi.Options,
	}
	f = append(f, mi.Optional...)
	f = append(f, "-", escapeField(mi.FSType), escapeField(mi.Source), mi.SuperOptions)
	return strings.Join(f, " ")
}

// FuzzParseMountInfo checks that no input makes the parser panic, and that
// what it accepts survives a round trip through the kernel's escaping.
func FuzzParseMountInfo(f *testing.F) {
	f.Add([]byte("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"))
	f.Add([]byte(`1 2 0:1 / /a\040b rw - ext4 /dev/x rw` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		infos, err := ParseMountInfo(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for _, mi := range infos {
			if mi.MountPoint == "" || mi.Root == "" || mi.FSType == "" {
				t.Fatalf("accepted an empty path field: %+v", mi)
			}
			if mi.ID < 0 || mi.ParentID < 0 || mi.Major < 0 || mi.Minor < 0 {
				t.Fatalf("accepted a negative number: %+v", mi)
			}
			line := formatMountInfo(mi)
			back, err := ParseMountInfo(strings.NewReader(line + "\n"))
			if err != nil {
				t.Fatalf("re-parse %q: %v", line, err)
			}
			if len(back) != 1 || !reflect.DeepEqual(back[0], mi) {
				t.Fatalf("round trip of %+v gave %+v", mi, back)
			}
		}
	})
}
