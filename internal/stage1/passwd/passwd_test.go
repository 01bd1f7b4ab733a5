package passwd

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseUsers(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []User
	}{
		{
			name: "debian defaults",
			in:   "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
			want: []User{
				{Name: "root", UID: 0, GID: 0, Home: "/root", Shell: "/bin/bash"},
				{Name: "daemon", UID: 1, GID: 1, Home: "/usr/sbin", Shell: "/usr/sbin/nologin"},
			},
		},
		{
			name: "comments blank lines nis and crlf",
			in:   "# comment\n\n+nisuser::::::\n-bad::::::\napp:x:1000:1000::/home/app:/bin/sh\r\n",
			want: []User{{Name: "app", UID: 1000, GID: 1000, Home: "/home/app", Shell: "/bin/sh"}},
		},
		{
			name: "no trailing newline",
			in:   "app:x:1000:100:App:/:/bin/sh",
			want: []User{{Name: "app", UID: 1000, GID: 100, Home: "/", Shell: "/bin/sh"}},
		},
		{
			name: "malformed lines are skipped",
			in: strings.Join([]string{
				"short:x:1",
				"toolong:x:1:1:g:/h:/s:extra",
				"neguid:x:-1:1::/:/bin/sh",
				"bigid:x:4294967295:1::/:/bin/sh",
				"hugeid:x:99999999999:1::/:/bin/sh",
				"nonnum:x:abc:1::/:/bin/sh",
				":x:5:5::/:/bin/sh",
				"sp ace:x:6:6::/:/bin/sh",
				"plusid:x:+7:7::/:/bin/sh",
				"ok:x:8:8::/:/bin/sh",
			}, "\n"),
			want: []User{{Name: "ok", UID: 8, GID: 8, Home: "/", Shell: "/bin/sh"}},
		},
		{
			name: "empty",
			in:   "",
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUsers(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseUsers: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseUsers = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseGroups(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Group
	}{
		{
			name: "members",
			in:   "root:x:0:\nwheel:x:10:alice,bob\nsp:x:11: carol , ,dave\n",
			want: []Group{
				{Name: "root", GID: 0},
				{Name: "wheel", GID: 10, Members: []string{"alice", "bob"}},
				{Name: "sp", GID: 11, Members: []string{"carol", "dave"}},
			},
		},
		{
			name: "malformed lines are skipped",
			in:   "nogid:x::\nthree:x:3\nfive:x:5::\n#c:x:1:\nok:*:42:\n",
			want: []Group{{Name: "ok", GID: 42}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGroups(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseGroups: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseGroups = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	users := []User{{Name: "a", UID: 1}, {Name: "b", UID: 2}, {Name: "a", UID: 3}}
	groups := []Group{{Name: "g", GID: 7}}
	tests := []struct {
		name    string
		lookup  string
		wantUID uint32
		wantOK  bool
	}{
		{name: "first match wins", lookup: "a", wantUID: 1, wantOK: true},
		{name: "second entry", lookup: "b", wantUID: 2, wantOK: true},
		{name: "missing", lookup: "c", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := LookupUser(users, tt.lookup)
			if ok != tt.wantOK || u.UID != tt.wantUID {
				t.Errorf("LookupUser(%q) = %+v, %v", tt.lookup, u, ok)
			}
		})
	}
	if g, ok := LookupGroup(groups, "g"); !ok || g.GID != 7 {
		t.Errorf("LookupGroup(g) = %+v, %v", g, ok)
	}
	if _, ok := LookupGroup(groups, "x"); ok {
		t.Error("LookupGroup(x) found a group")
	}
}

func TestTooLarge(t *testing.T) {
	big := io.LimitReader(endless('#'), MaxFileSize+2)
	if _, err := ParseUsers(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ParseUsers(big) error = %v, want ErrTooLarge", err)
	}
}

// endless is a reader of one repeated byte.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

// FuzzParseUsers checks that any input parses without panicking and that
// what it yields survives a round trip through the file format.
func FuzzParseUsers(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := ParseUsers(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, u := range users {
			if !validName(u.Name) || strings.Contains(u.Name, ":") {
				t.Fatalf("parsed invalid name %q", u.Name)
			}
			fmt.Fprintf(&b, "%s:x:%d:%d::%s:%s\n", u.Name, u.UID, u.GID, u.Home, u.Shell)
		}
		again, err := ParseUsers(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if !reflect.DeepEqual(users, again) {
			t.Fatalf("round trip changed the users:\n%+v\n%+v", users, again)
		}
	})
}

// FuzzParseGroups is FuzzParseUsers for group files.
func FuzzParseGroups(f *testing.F) {
	f.Add([]byte("root:x:0:\nwheel:x:10:alice,bob\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		groups, err := ParseGroups(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, g := range groups {
			if !validName(g.Name) || strings.Contains(g.Name, ":") {
				t.Fatalf("parsed invalid name %q", g.Name)
			}
			for _, m := range g.Members {
				if m == "" || strings.ContainsAny(m, ",:\n") {
					t.Fatalf("parsed invalid member %q", m)
				}
			}
			fmt.Fprintf(&b, "%s:x:%d:%s\n", g.Name, g.GID, strings.Join(g.Members, ","))
		}
		again, err := ParseGroups(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if !reflect.DeepEqual(groups, again) {
			t.Fatalf("round trip changed the groups:\n%+v\n%+v", groups, again)
		}
	})
}
