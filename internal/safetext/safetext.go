// Package safetext makes text that came from images, pod manifests, keys
// or the command line safe to print on a terminal: control characters
// (an ESC starts a terminal escape sequence, a newline forges a line of
// output) are written as visible escapes instead of being sent raw.
//
// Text runs through Escape before it reaches a table, a key=value line or
// an error message; JSON output runs through JSON, which keeps it valid
// JSON. It runs in stage0, does no I/O and needs no privileges.
package safetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// unsafe reports whether r must not reach a terminal raw: the C0 and C1
// control characters and DEL (unicode.Cc), and the bidirectional
// formatting characters, which reorder what is shown around them.
func unsafe(r rune) bool {
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Bidi_Control, r)
}

// Escape returns s with every control character, bidirectional formatting
// character and invalid UTF-8 byte written as a Go escape (\x1b, \u202e)
// and every backslash doubled, so that the result is one line of
// printable text from which s can be read back. Text without any of them
// is returned as it is.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < utf8.RuneSelf && unsafe(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\\' || unsafe(r) {
			return true
		}
		i += size
	}
	return false
}

// JSON returns the JSON text b with the control and formatting characters
// that encoding/json leaves raw (DEL, the C1 controls, the bidirectional
// formatting characters) written as \u escapes. b must be valid JSON, as
// encoding/json produces it: outside strings JSON has only ASCII
// punctuation, digits, letters and white space, so every character
// replaced is inside a string, and the result is valid JSON with the same
// value.
func JSON(b []byte) []byte {
	if !jsonNeedsEscape(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && r >= 0x20 && unsafe(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

func jsonNeedsEscape(b []byte) bool {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && r >= 0x20 && unsafe(r) {
			return true
		}
		i += size
	}
	return false
}
