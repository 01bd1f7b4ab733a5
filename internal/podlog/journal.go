package podlog

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// JournalFields are the fields of a journal entry that ParseJournalEntry
// reads, for journalctl's --output-fields (its __ fields always come).
var JournalFields = []string{"MESSAGE", "PRIORITY", "_SYSTEMD_UNIT", "_LINE_BREAK"}

// JournalEntry is one app record of a pod's journal (stage1abi.JournalDir).
type JournalEntry struct {
	Record
	App    string // from _SYSTEMD_UNIT=app-APP.service
	Cursor string // __CURSOR, to go on after it (--after-cursor)
}

// ParseJournalEntry parses one line of journalctl --output=json --all.
// The stream is the priority's (stage1abi.JournalPriorityStderr for
// stderr, any other for stdout); a line journald ended without a newline,
// at the end of the app's output or at its line limit (_LINE_BREAK=eof,
// line-max), is Partial. MESSAGE may be a string or, when it is not valid
// UTF-8, an array of bytes.
func ParseJournalEntry(line []byte) (JournalEntry, error) {
	var raw struct {
		Message   json.RawMessage `json:"MESSAGE"`
		Priority  json.RawMessage `json:"PRIORITY"`
		Unit      json.RawMessage `json:"_SYSTEMD_UNIT"`
		LineBreak json.RawMessage `json:"_LINE_BREAK"`
		Realtime  string          `json:"__REALTIME_TIMESTAMP"`
		Cursor    string          `json:"__CURSOR"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return JournalEntry{}, errdefs.Newf(errdefs.ErrInvalidArgument, "journal entry: %w", err)
	}
	var e JournalEntry
	e.Cursor = raw.Cursor
	us, err := strconv.ParseInt(raw.Realtime, 10, 64)
	if err != nil || us < 0 {
		return JournalEntry{}, errdefs.InvalidArgument("journal entry: __REALTIME_TIMESTAMP %q is not a time", raw.Realtime)
	}
	e.Time = time.UnixMicro(us).UTC()
	msg, err := fieldBytes(raw.Message)
	if err != nil {
		return JournalEntry{}, errdefs.Newf(errdefs.ErrInvalidArgument, "journal entry: MESSAGE: %w", err)
	}
	// A record holds no newline: journald splits lines at newlines, so
	// one can only come from a NUL-ended line; it is kept out.
	e.Content = []byte(strings.ReplaceAll(string(msg), "\n", " "))
	e.Stream = stage1abi.LogStreamStdout
	if p, _ := fieldBytes(raw.Priority); string(p) == strconv.Itoa(stage1abi.JournalPriorityStderr) {
		e.Stream = stage1abi.LogStreamStderr
	}
	if lb, _ := fieldBytes(raw.LineBreak); string(lb) == "eof" || string(lb) == "line-max" {
		e.Partial = true
	}
	unit, _ := fieldBytes(raw.Unit)
	if app, ok := strings.CutPrefix(string(unit), "app-"); ok {
		e.App = strings.TrimSuffix(app, ".service")
	}
	return e, nil
}

// fieldBytes decodes a field of journalctl's JSON: a string, an array of
// bytes, or null or absent (empty).
func fieldBytes(v json.RawMessage) ([]byte, error) {
	if len(v) == 0 || string(v) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return []byte(s), nil
	}
	var b []byte
	var nums []int
	if err := json.Unmarshal(v, &nums); err != nil {
		// A field with several values is an array of them: the first.
		var many []json.RawMessage
		if err2 := json.Unmarshal(v, &many); err2 != nil || len(many) == 0 {
			return nil, errdefs.InvalidArgument("not a string nor an array of bytes")
		}
		return fieldBytes(many[0])
	}
	for _, n := range nums {
		if n < 0 || n > 255 {
			return nil, errdefs.InvalidArgument("byte %d out of range", n)
		}
		b = append(b, byte(n))
	}
	return b, nil
}
