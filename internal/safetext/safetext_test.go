package safetext

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "example.com/app:1.0", want: "example.com/app:1.0"},
		{name: "unicode letters", in: "größe-日本", want: "größe-日本"},
		{name: "empty", in: "", want: ""},
		{name: "escape sequence", in: "v1\x1b[2J\x1b]0;pwned\x07", want: `v1\x1b[2J\x1b]0;pwned\x07`},
		{name: "newline and tab", in: "a\nb\tc\r", want: `a\x0ab\x09c\x0d`},
		{name: "nul and del", in: "a\x00b\x7f", want: `a\x00b\x7f`},
		{name: "c1 control", in: "a\u009b2J", want: `a\u009b2J`},
		{name: "bidi override", in: "abc\u202edcb", want: `abc\u202edcb`},
		{name: "invalid utf-8", in: "a\xffb\xc3", want: `a\xffb\xc3`},
		{name: "backslash", in: `a\x1b`, want: `a\\x1b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Fatalf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{name: "plain", in: map[string]string{"name": "app"}, want: `{"name":"app"}`},
		{name: "c0 already escaped by encoding/json", in: "a\x1bb", want: `"a\u001bb"`},
		{name: "del", in: "a\x7fb", want: `"a\u007fb"`},
		{name: "c1", in: "a\u009bb", want: `"a\u009bb"`},
		{name: "bidi", in: []string{"x\u2067y"}, want: `["x\u2067y"]`},
		{name: "letters stay", in: "größe", want: `"größe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := JSON(b)
			if string(got) != tt.want {
				t.Fatalf("JSON(%s) = %s, want %s", b, got, tt.want)
			}
			var back, orig any
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("result is not JSON: %v", err)
			}
			_ = json.Unmarshal(b, &orig)
			if strconv.Quote(stringOf(back)) != strconv.Quote(stringOf(orig)) {
				t.Fatalf("value changed: %v, was %v", back, orig)
			}
		})
	}
}

func stringOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// printable reports whether s can go to a terminal raw.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unsafe(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"plain", "a\x1b[31mred", "\xff\xfe", `back\slash`, "\u202e", "tab\tnl\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Escape(s)
		if !printable(got) {
			t.Fatalf("Escape(%q) = %q still holds a control character", s, got)
		}
		if strings.ContainsRune(got, '\n') {
			t.Fatalf("Escape(%q) is not one line", s)
		}
		if printable(s) && !strings.Contains(s, `\`) && got != s {
			t.Fatalf("Escape changed printable text %q to %q", s, got)
		}
		if got2 := Escape(s); got2 != got {
			t.Fatalf("Escape is not deterministic")
		}
	})
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{"plain", "a\u009bb", "\x7f", "\u2066x\u2069", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(map[string]string{s: s})
		if err != nil {
			t.Skip()
		}
		got := JSON(b)
		if !printable(string(got)) {
			t.Fatalf("JSON(%s) = %s still holds a control character", b, got)
		}
		var a, c map[string]string
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got, &c); err != nil {
			t.Fatalf("JSON(%s) = %s is not valid JSON: %v", b, got, err)
		}
		if a[s] != c[s] {
			t.Fatalf("JSON changed the value: %q, was %q", c[s], a[s])
		}
	})
}
