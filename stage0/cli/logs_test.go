package cli

import (
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		want    time.Time
		wantErr bool
	}{
		{name: "minutes", in: "10m", want: now.Add(-10 * time.Minute)},
		{name: "compound duration", in: "1h30m", want: now.Add(-90 * time.Minute)},
		{name: "zero", in: "0s", want: now},
		{name: "rfc3339", in: "2026-01-02T15:04:05Z", want: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{name: "rfc3339 nanoseconds and zone", in: "2026-01-02T16:04:05.5+01:00", want: time.Date(2026, 1, 2, 15, 4, 5, 5e8, time.UTC)},
		{name: "negative", in: "-5m", wantErr: true},
		{name: "bare number", in: "10", wantErr: true},
		{name: "date only", in: "2026-01-02", wantErr: true},
		{name: "word", in: "yesterday", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSince(tt.in, now)
			if (err != nil) != tt.wantErr || (err == nil && !got.Equal(tt.want)) {
				t.Fatalf("parseSince(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
