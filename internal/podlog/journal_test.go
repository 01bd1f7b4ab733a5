package podlog

import (
	"bytes"
	"testing"
	"time"
)

func TestParseJournalEntry(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    JournalEntry
		wantErr bool
	}{
		{
			name: "stdout line",
			line: `{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000123456","MESSAGE":"hello","PRIORITY":"6","_SYSTEMD_UNIT":"app-web.service"}`,
			want: JournalEntry{Record: Record{Time: time.UnixMicro(1700000000123456).UTC(), Stream: "stdout", Content: []byte("hello")}, App: "web", Cursor: "s=1;i=2"},
		},
		{
			name: "stderr line without its newline",
			line: `{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":"oops","PRIORITY":"3","_SYSTEMD_UNIT":"app-db.service","_LINE_BREAK":"eof"}`,
			want: JournalEntry{Record: Record{Time: time.UnixMicro(1).UTC(), Stream: "stderr", Partial: true, Content: []byte("oops")}, App: "db", Cursor: "c"},
		},
		{
			name: "binary message",
			line: `{"__REALTIME_TIMESTAMP":"2","MESSAGE":[104,255,0],"PRIORITY":"6","_SYSTEMD_UNIT":"app-a.service"}`,
			want: JournalEntry{Record: Record{Time: time.UnixMicro(2).UTC(), Stream: "stdout", Content: []byte{'h', 0xff, 0}}, App: "a"},
		},
		{
			name: "null message (empty line)",
			line: `{"__REALTIME_TIMESTAMP":"3","MESSAGE":null,"PRIORITY":"6"}`,
			want: JournalEntry{Record: Record{Time: time.UnixMicro(3).UTC(), Stream: "stdout"}},
		},
		{name: "no time", line: `{"MESSAGE":"x"}`, wantErr: true},
		{name: "not json", line: `MESSAGE=x`, wantErr: true},
		{name: "byte out of range", line: `{"__REALTIME_TIMESTAMP":"3","MESSAGE":[256]}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJournalEntry([]byte(tt.line))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseJournalEntry(%s) = %+v, want an error", tt.line, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Time.Equal(tt.want.Time) || got.Stream != tt.want.Stream || got.Partial != tt.want.Partial ||
				!bytes.Equal(got.Content, tt.want.Content) || got.App != tt.want.App || got.Cursor != tt.want.Cursor {
				t.Fatalf("ParseJournalEntry(%s) = %+v, want %+v", tt.line, got, tt.want)
			}
		})
	}
}

// FuzzParseJournalEntry checks that what parses prints as one line: no
// newline in the content, a known stream.
func FuzzParseJournalEntry(f *testing.F) {
	f.Add([]byte(`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"a\nb","PRIORITY":"3"}`))
	f.Add([]byte(`{"__REALTIME_TIMESTAMP":"2","MESSAGE":[10,1],"_LINE_BREAK":["eof","x"]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseJournalEntry(line)
		if err != nil {
			return
		}
		if bytes.IndexByte(e.Content, '\n') >= 0 {
			t.Fatalf("content %q holds a newline", e.Content)
		}
		if e.Stream != "stdout" && e.Stream != "stderr" {
			t.Fatalf("stream %q", e.Stream)
		}
	})
}
