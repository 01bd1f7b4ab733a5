package download

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestParseMaxAge(t *testing.T) {
	tests := []struct {
		name   string
		lines  []string
		want   int64
		wantOK bool
	}{
		{name: "absent"},
		{name: "plain", lines: []string{"max-age=300"}, want: 300, wantOK: true},
		{name: "with others", lines: []string{"public, max-age=3600, must-revalidate"}, want: 3600, wantOK: true},
		{name: "case and spaces", lines: []string{"  Public ,\tMAX-AGE = 60 "}, want: 60, wantOK: true},
		{name: "quoted", lines: []string{`max-age="120"`}, want: 120, wantOK: true},
		{name: "zero", lines: []string{"max-age=0"}, want: 0, wantOK: true},
		{name: "several lines", lines: []string{"public", "max-age=5"}, want: 5, wantOK: true},
		{name: "empty elements", lines: []string{",,max-age=7,,"}, want: 7, wantOK: true},
		{name: "huge saturates", lines: []string{"max-age=99999999999999999999999"}, want: maxDeltaSeconds, wantOK: true},
		{name: "no-cache", lines: []string{"max-age=300, no-cache"}},
		{name: "no-cache on another line", lines: []string{"max-age=300", "no-cache"}},
		{name: "no-store", lines: []string{"no-store, max-age=300"}},
		{name: "qualified no-cache keeps max-age", lines: []string{`no-cache="Set-Cookie, X-Foo", max-age=30`}, want: 30, wantOK: true},
		{name: "s-maxage is for shared caches", lines: []string{"s-maxage=300"}},
		{name: "max-age without value", lines: []string{"max-age"}},
		{name: "negative", lines: []string{"max-age=-1"}},
		{name: "not a number", lines: []string{"max-age=ten"}},
		{name: "fraction", lines: []string{"max-age=1.5"}},
		{name: "twice is stale", lines: []string{"max-age=10, max-age=20"}},
		{name: "unterminated quote", lines: []string{`max-age="10`}},
		{name: "garbage after value", lines: []string{"max-age=10 20"}},
		{name: "value without name", lines: []string{"=10, max-age=5"}},
		{name: "escaped quote in other directive", lines: []string{`foo="a\"b,c", max-age=9`}, want: 9, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseMaxAge(tt.lines)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseMaxAge(%q) = %d, %v; want %d, %v", tt.lines, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestFreshness(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{name: "none", header: http.Header{}, want: 0},
		{name: "max-age", header: http.Header{"Cache-Control": {"max-age=60"}}, want: time.Minute},
		{name: "less age", header: http.Header{"Cache-Control": {"max-age=60"}, "Age": {"20"}}, want: 40 * time.Second},
		{name: "older than max-age", header: http.Header{"Cache-Control": {"max-age=60"}, "Age": {"61"}}, want: 0},
		{name: "bad age ignored", header: http.Header{"Cache-Control": {"max-age=60"}, "Age": {"soon"}}, want: time.Minute},
		{name: "no-store", header: http.Header{"Cache-Control": {"no-store"}}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := freshness(tt.header); got != tt.want {
				t.Errorf("freshness = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		name                  string
		in                    string
		first, last, complete int64
		wantOK                bool
	}{
		{name: "range", in: "bytes 0-499/1234", first: 0, last: 499, complete: 1234, wantOK: true},
		{name: "last byte", in: "bytes 1233-1233/1234", first: 1233, last: 1233, complete: 1234, wantOK: true},
		{name: "unknown length", in: "bytes 10-19/*", first: 10, last: 19, complete: -1, wantOK: true},
		{name: "unsatisfied", in: "bytes */1234", first: -1, last: -1, complete: 1234, wantOK: true},
		{name: "unit case", in: "BYTES 0-0/1", first: 0, last: 0, complete: 1, wantOK: true},
		{name: "outer spaces", in: " bytes 0-0/1 ", first: 0, last: 0, complete: 1, wantOK: true},
		{name: "largest", in: "bytes 0-9223372036854775806/9223372036854775807", first: 0, last: 1<<63 - 2, complete: 1<<63 - 1, wantOK: true},
		{name: "empty", in: ""},
		{name: "other unit", in: "items 0-1/2"},
		{name: "no space", in: "bytes0-1/2"},
		{name: "reversed", in: "bytes 5-4/10"},
		{name: "past the end", in: "bytes 0-10/10"},
		{name: "both unknown", in: "bytes */*"},
		{name: "sign", in: "bytes +1-2/3"},
		{name: "negative", in: "bytes -1-2/3"},
		{name: "overflow", in: "bytes 0-1/99999999999999999999"},
		{name: "missing length", in: "bytes 0-1"},
		{name: "missing last", in: "bytes 0-/10"},
		{name: "inner space", in: "bytes 0 -1/10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, last, complete, ok := parseContentRange(tt.in)
			if ok != tt.wantOK || (ok && (first != tt.first || last != tt.last || complete != tt.complete)) {
				t.Errorf("parseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d, %v",
					tt.in, first, last, complete, ok, tt.first, tt.last, tt.complete, tt.wantOK)
			}
		})
	}
}

func TestRangeValidator(t *testing.T) {
	date := "Mon, 02 Jun 2025 12:00:00 GMT"
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{name: "strong etag", header: http.Header{"Etag": {`"abc"`}}, want: `"abc"`},
		{name: "weak etag, no date", header: http.Header{"Etag": {`W/"abc"`}}, want: ""},
		{name: "weak etag falls back to last-modified", header: http.Header{"Etag": {`W/"abc"`}, "Last-Modified": {"Sun, 01 Jun 2025 12:00:00 GMT"}, "Date": {date}}, want: "Sun, 01 Jun 2025 12:00:00 GMT"},
		{name: "last-modified too close to date", header: http.Header{"Last-Modified": {date}, "Date": {date}}, want: ""},
		{name: "last-modified without date", header: http.Header{"Last-Modified": {date}}, want: ""},
		{name: "bad last-modified", header: http.Header{"Last-Modified": {"yesterday"}, "Date": {date}}, want: ""},
		{name: "nothing", header: http.Header{}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rangeValidator(tt.header); got != tt.want {
				t.Errorf("rangeValidator = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMetaResumable(t *testing.T) {
	const url = "https://example.test/a.aci"
	tests := []struct {
		name string
		m    meta
		held int64
		want bool
	}{
		{name: "same object", m: meta{URL: url, Validator: `"v"`, Size: 100}, held: 50, want: true},
		{name: "unknown size", m: meta{URL: url, Validator: `"v"`, Size: -1}, held: 50, want: true},
		{name: "complete", m: meta{URL: url, Validator: `"v"`, Size: 100}, held: 100, want: true},
		{name: "longer than the object", m: meta{URL: url, Validator: `"v"`, Size: 100}, held: 101},
		{name: "other URL", m: meta{URL: url + "x", Validator: `"v"`, Size: 100}, held: 50},
		{name: "no validator", m: meta{URL: url, ETag: `W/"v"`, Size: 100}, held: 50},
		{name: "zero meta", held: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.resumable(url, tt.held, false); got != tt.want {
				t.Errorf("resumable = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzParseMaxAge checks that any Cache-Control value parses without
// panicking to a bounded lifetime, and that no-store always wins.
func FuzzParseMaxAge(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		secs, ok := parseMaxAge([]string{s})
		if !ok && secs != 0 {
			t.Fatalf("parseMaxAge(%q) = %d with ok false", s, secs)
		}
		if secs < 0 || secs > maxDeltaSeconds {
			t.Fatalf("parseMaxAge(%q) = %d, out of range", s, secs)
		}
		if _, ok := parseMaxAge([]string{"no-store", s}); ok {
			t.Fatalf("no-store did not win over %q", s)
		}
		if d := freshness(http.Header{"Cache-Control": {s}, "Age": {s}}); d < 0 || d > maxDeltaSeconds*time.Second {
			t.Fatalf("freshness(%q) = %v, out of range", s, d)
		}
	})
}

// FuzzParseContentRange checks that what parses is consistent and survives
// a round trip through its canonical form.
func FuzzParseContentRange(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		first, last, complete, ok := parseContentRange(s)
		if !ok {
			return
		}
		var canon string
		switch {
		case first == -1:
			if last != -1 || complete < 0 {
				t.Fatalf("%q: unsatisfied form with %d-%d/%d", s, first, last, complete)
			}
			canon = fmt.Sprintf("bytes */%d", complete)
		case first < 0 || last < first || (complete >= 0 && last >= complete) || complete < -1:
			t.Fatalf("%q: inconsistent %d-%d/%d", s, first, last, complete)
		case complete == -1:
			canon = fmt.Sprintf("bytes %d-%d/*", first, last)
		default:
			canon = fmt.Sprintf("bytes %d-%d/%d", first, last, complete)
		}
		f2, l2, c2, ok2 := parseContentRange(canon)
		if !ok2 || f2 != first || l2 != last || c2 != complete {
			t.Fatalf("%q parsed to %q, which parses to %d-%d/%d (%v)", s, canon, f2, l2, c2, ok2)
		}
	})
}
