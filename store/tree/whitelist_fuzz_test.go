package tree

import (
	"path"
	"strings"
	"testing"
)

// FuzzWhitelist feeds pathWhitelist entries (newline-separated) and a path
// to the whitelist parser: it must not panic, must admit every entry it was
// given and each parent of one, and must admit nothing else.
func FuzzWhitelist(f *testing.F) {
	f.Add("/etc/passwd\n/bin/\n/usr/lib/x.so", "/usr/lib")
	f.Add("relative\n//double//slash/", "/double")
	f.Add("/", "/anything")
	f.Fuzz(func(t *testing.T, entries, p string) {
		list := strings.Split(entries, "\n")
		w := newWhitelist("id", list)
		if w == nil {
			t.Fatal("a non-empty list gave no whitelist")
		}
		for _, e := range list {
			c := path.Clean("/" + e)
			for q := c; ; q = path.Dir(q) {
				if !w.Admits(q) {
					t.Fatalf("entry %q: %q not admitted", e, q)
				}
				if q == "/" {
					break
				}
			}
		}
		p = path.Clean("/" + p)
		if !w.Admits(p) {
			return
		}
		for _, e := range list {
			c := path.Clean("/" + e)
			if p == "/" || c == p || strings.HasPrefix(c, p+"/") {
				return
			}
		}
		t.Fatalf("%q admitted by %q", p, list)
	})
}
