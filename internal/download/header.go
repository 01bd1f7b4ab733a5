package download

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDeltaSeconds is the largest delta-seconds a cache must represent; larger
// values are read as this one (RFC 9111 section 1.2.2).
const maxDeltaSeconds = 1 << 31

// freshness returns how long the response h may be used without
// revalidation by a private cache: Cache-Control max-age less the Age the
// response already has. It is 0 when there is no max-age, when no-cache or
// no-store is present, or when the header is malformed or contradicts itself.
func freshness(h http.Header) time.Duration {
	secs, ok := parseMaxAge(h.Values("Cache-Control"))
	if !ok {
		return 0
	}
	if ages := h.Values("Age"); len(ages) > 0 {
		if age, ok := parseDeltaSeconds(strings.TrimSpace(ages[0])); ok {
			secs -= age
		}
	}
	if secs <= 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// parseMaxAge reads the max-age directive, in seconds, from the
// Cache-Control field lines. ok is false when there is none, when
// no-store or an unqualified no-cache forbids reuse without revalidation, or
// when max-age is malformed or given more than once (RFC 9111 section 4.2.1
// allows treating that as stale). Directive names are case-insensitive and the
// value may be quoted.
func parseMaxAge(lines []string) (secs int64, ok bool) {
	found := 0
	for _, line := range lines {
		for s := line; ; {
			var name, value string
			var hasValue, valid bool
			name, value, hasValue, s, valid = nextDirective(s)
			if !valid {
				return 0, false
			}
			switch strings.ToLower(name) {
			case "":
			case "no-store":
				return 0, false
			case "no-cache":
				// no-cache="field" only restricts those fields.
				if !hasValue {
					return 0, false
				}
			case "max-age":
				found++
				v, good := parseDeltaSeconds(value)
				if !hasValue || !good {
					return 0, false
				}
				secs = v
			}
			if s == "" {
				break
			}
		}
	}
	if found != 1 {
		return 0, false
	}
	return secs, true
}

// nextDirective splits the first directive off a Cache-Control line:
// `token [ "=" ( token / quoted-string ) ]`, then optional whitespace and a
// comma. Empty list elements yield an empty name. valid is false on a syntax
// error (an unterminated quoted string, a missing comma).
func nextDirective(s string) (name, value string, hasValue bool, rest string, valid bool) {
	s = trimOWS(s)
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	name, s = s[:i], trimOWS(s[i:])
	if strings.HasPrefix(s, "=") {
		if name == "" {
			return "", "", false, "", false
		}
		hasValue = true
		s = trimOWS(s[1:])
		if strings.HasPrefix(s, `"`) {
			var ok bool
			value, s, ok = quotedString(s)
			if !ok {
				return "", "", false, "", false
			}
		} else {
			j := 0
			for j < len(s) && isTokenChar(s[j]) {
				j++
			}
			value, s = s[:j], s[j:]
		}
		s = trimOWS(s)
	}
	switch {
	case s == "":
		return name, value, hasValue, "", true
	case s[0] == ',':
		return name, value, hasValue, s[1:], true
	}
	return "", "", false, "", false
}

// quotedString reads a quoted-string at the start of s, undoing
// backslash escapes.
func quotedString(s string) (value, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// parseDeltaSeconds reads 1*DIGIT, saturating at maxDeltaSeconds.
func parseDeltaSeconds(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDeltaSeconds {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDeltaSeconds), true
}

func trimOWS(s string) string { return strings.Trim(s, " \t") }

// isTokenChar reports whether c is a tchar (RFC 9110 section 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseContentRange parses a Content-Range value (RFC 9110 section 14.4):
// "bytes first-last/complete", "bytes first-last/*" or "bytes */complete".
// first and last are -1 in the last (unsatisfied) form, complete is -1 when
// the sender gave "*". ok is false for anything else, including a range that
// is reversed or runs past the complete length.
func parseContentRange(s string) (first, last, complete int64, ok bool) {
	unit, spec, found := strings.Cut(strings.TrimSpace(s), " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return 0, 0, 0, false
	}
	rng, size, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, 0, false
	}
	complete = -1
	if size != "*" {
		if complete, ok = parseDigits(size); !ok {
			return 0, 0, 0, false
		}
	}
	if rng == "*" {
		if complete < 0 {
			return 0, 0, 0, false
		}
		return -1, -1, complete, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	if first, ok = parseDigits(a); !ok {
		return 0, 0, 0, false
	}
	if last, ok = parseDigits(b); !ok {
		return 0, 0, 0, false
	}
	if last < first || (complete >= 0 && last >= complete) {
		return 0, 0, 0, false
	}
	return first, last, complete, true
}

// parseDigits reads 1*DIGIT that fits an int64 (no sign, no spaces).
func parseDigits(s string) (int64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// rangeValidator picks the If-Range value for resuming the representation
// described by h, or "" when none can be used safely (RFC 9110 section
// 13.1.5): a strong ETag, else a Last-Modified date at least a second older
// than the response's Date.
func rangeValidator(h http.Header) string {
	if tag := h.Get("ETag"); tag != "" && !strings.HasPrefix(tag, "W/") {
		return tag
	}
	lm := h.Get("Last-Modified")
	if lm == "" {
		return ""
	}
	mod, err := http.ParseTime(lm)
	if err != nil {
		return ""
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || date.Sub(mod) < time.Second {
		return ""
	}
	return lm
}
