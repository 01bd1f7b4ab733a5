package applog

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestJournalArgs(t *testing.T) {
	since := time.Date(2026, 11, 23, 15, 0, 1, 500, time.UTC)
	base := "--directory=/p/journal/id --no-pager --quiet --all --output=json --output-fields=MESSAGE,PRIORITY,_SYSTEMD_UNIT,_LINE_BREAK"
	tests := []struct {
		name   string
		apps   []string
		o      Options
		cursor string
		want   string
	}{
		{name: "one app", apps: []string{"web"}, want: base + " _TRANSPORT=stdout _SYSTEMD_UNIT=app-web.service"},
		{
			name: "two apps, last lines", apps: []string{"a", "b"}, o: Options{Lines: 5},
			want: base + " --lines=5 _TRANSPORT=stdout _SYSTEMD_UNIT=app-a.service _SYSTEMD_UNIT=app-b.service",
		},
		{
			name: "since, rounded down", apps: []string{"a"}, o: Options{Since: since},
			want: base + " --since=@" + strconv.FormatInt(since.Unix(), 10) + " _TRANSPORT=stdout _SYSTEMD_UNIT=app-a.service",
		},
		{
			name: "after a cursor: no lines, no since", apps: []string{"a"}, o: Options{Lines: 5, Since: since}, cursor: "s=1;i=2",
			want: base + " --after-cursor=s=1;i=2 _TRANSPORT=stdout _SYSTEMD_UNIT=app-a.service",
		},
		{
			name: "until, rounded up", apps: []string{"a"}, o: Options{Until: since},
			want: base + " --until=@" + strconv.FormatInt(since.Unix()+1, 10) + " _TRANSPORT=stdout _SYSTEMD_UNIT=app-a.service",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(journalArgs("/p/journal/id", tt.apps, tt.o, tt.cursor), " "); got != tt.want {
				t.Fatalf("journalArgs =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
