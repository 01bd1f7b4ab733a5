package prepare

import (
	"slices"
	"testing"
	"time"

	"github.com/nosecone/nscn/store/index"
)

func TestStaleUse(t *testing.T) {
	now := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	img := func(key string, lastUsed time.Time) *image {
		return &image{entry: &index.Image{Key: key, LastUsed: lastUsed}}
	}
	tests := []struct {
		name string
		s1   *image
		apps map[string]*image
		want []string
	}{
		{
			name: "all used just now", s1: img("s1", now.Add(-time.Second)),
			apps: map[string]*image{"a": img("a", now.Add(-59*time.Second))},
		},
		{
			name: "never used", s1: img("s1", time.Time{}),
			apps: map[string]*image{"a": img("a", time.Time{})}, want: []string{"a", "s1"},
		},
		{
			name: "only the old one", s1: img("s1", now.Add(-time.Minute)),
			apps: map[string]*image{"a": img("a", now)}, want: []string{"s1"},
		},
		{
			name: "clock set back", s1: img("s1", now.Add(time.Hour)),
			apps: map[string]*image{"a": img("a", now)}, want: []string{"s1"},
		},
		{
			name: "one image for two apps is marked once", s1: img("s1", now),
			apps: map[string]*image{"a": img("x", now.Add(-time.Hour)), "b": img("x", now.Add(-time.Hour))}, want: []string{"x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := staleUse(now, tt.s1, tt.apps)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("staleUse = %q, want %q", got, tt.want)
			}
		})
	}
}
