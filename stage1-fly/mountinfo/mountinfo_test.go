package mountinfo

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Info
		wantErr bool
	}{
		{
			name: "kernel documentation example",
			in:   "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
			want: []Info{{ID: 36, Parent: 35, Root: "/mnt1", MountPoint: "/mnt2", Options: "rw,noatime", FSType: "ext3", Source: "/dev/root"}},
		},
		{
			name: "no optional fields and escaped spaces",
			in: "21 26 0:20 / /proc rw,relatime - proc proc rw\n" +
				`99 21 0:50 / /tmp/a\040b\134c rw shared:3 master:2 - tmpfs tm\011pfs rw` + "\n",
			want: []Info{
				{ID: 21, Parent: 26, Root: "/", MountPoint: "/proc", Options: "rw,relatime", FSType: "proc", Source: "proc"},
				{ID: 99, Parent: 21, Root: "/", MountPoint: `/tmp/a b\c`, Options: "rw", FSType: "tmpfs", Source: "tm\tpfs"},
			},
		},
		{name: "empty", in: "", want: nil},
		{name: "missing separator", in: "1 2 0:1 / / rw ext4 /dev/x rw\n", wantErr: true},
		{name: "too short after separator", in: "1 2 0:1 / / rw - ext4\n", wantErr: true},
		{name: "bad id", in: "x 2 0:1 / / rw - ext4 /dev/x rw\n", wantErr: true},
		{name: "truncated escape", in: `1 2 0:1 / /a\04 rw - ext4 /dev/x rw` + "\n", wantErr: true},
		{name: "bad escape", in: `1 2 0:1 / /a\999 rw - ext4 /dev/x rw` + "\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse error = %v, wantErr %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUnder(t *testing.T) {
	tests := []struct {
		name      string
		path, dir string
		want      bool
	}{
		{name: "same", path: "/a/b", dir: "/a/b", want: true},
		{name: "child", path: "/a/b/c", dir: "/a/b", want: true},
		{name: "sibling prefix", path: "/a/bc", dir: "/a/b", want: false},
		{name: "parent", path: "/a", dir: "/a/b", want: false},
		{name: "root", path: "/x", dir: "/", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Under(tt.path, tt.dir); got != tt.want {
				t.Errorf("Under(%q, %q) = %v", tt.path, tt.dir, got)
			}
		})
	}
}

// FuzzParse checks that no input makes Parse panic and that every mount it
// returns has the fields gc relies on.
func FuzzParse(f *testing.F) {
	f.Add([]byte("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		infos, err := Parse(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for _, in := range infos {
			if in.MountPoint == "" || in.Root == "" || in.Source == "" {
				t.Fatalf("parsed mount with an empty path field: %+v", in)
			}
			if in.ID < 0 || in.Parent < 0 {
				t.Fatalf("parsed negative id: %+v", in)
			}
		}
	})
}
