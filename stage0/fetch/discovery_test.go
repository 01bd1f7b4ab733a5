package fetch

import (
	"errors"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/discover"
	"github.com/nosecone/nscn/internal/errdefs"
)

func TestWantedMatch(t *testing.T) {
	host := discover.Vars(nil)
	other := "freebsd"
	if host["os"] == other {
		other = "linux"
	}
	tests := []struct {
		name   string
		want   wanted
		image  string
		labels map[string]string
		err    string // "" for a match
	}{
		{name: "name only, any labels", want: wanted{name: "example.com/app"}, image: "example.com/app", labels: map[string]string{"version": "1", "channel": "beta"}},
		{name: "other name", want: wanted{name: "example.com/app"}, image: "example.com/evil", err: "is named example.com/evil"},
		{name: "version asked and given", want: wanted{name: "example.com/app", labels: map[string]string{"version": "1"}}, image: "example.com/app", labels: map[string]string{"version": "1"}},
		{name: "version asked, other given", want: wanted{name: "example.com/app", labels: map[string]string{"version": "1"}}, image: "example.com/app", labels: map[string]string{"version": "2"}, err: `version="2", not "1"`},
		{name: "label asked, absent", want: wanted{name: "example.com/app", labels: map[string]string{"channel": "alpha"}}, image: "example.com/app", err: `channel=""`},
		{name: "host os by default", want: wanted{name: "example.com/app"}, image: "example.com/app", labels: map[string]string{"os": host["os"], "arch": host["arch"]}},
		{name: "another os, not asked", want: wanted{name: "example.com/app"}, image: "example.com/app", labels: map[string]string{"os": other}, err: "not this host's"},
		{name: "another os, asked", want: wanted{name: "example.com/app", labels: map[string]string{"os": other}}, image: "example.com/app", labels: map[string]string{"os": other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.want.match(tt.image, tt.labels)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, errdefs.ErrPermissionDenied) {
				t.Fatalf("err = %v, want a refusal with %q", err, tt.err)
			}
		})
	}
}

func TestLinkCycle(t *testing.T) {
	var top *link
	a := &link{asked: "example.com/a", url: "https://s/a.aci", parent: top}
	b := &link{asked: "example.com/b,version=1", url: "https://s/b.aci", parent: a}
	tests := []struct {
		name       string
		chain      *link
		asked, url string
		want       string // "" for no cycle
	}{
		{name: "empty chain", chain: nil, asked: "example.com/a"},
		{name: "new name", chain: b, asked: "example.com/c"},
		{name: "back to the top", chain: b, asked: "example.com/a", want: "dependency cycle: example.com/a → example.com/b,version=1 → example.com/a"},
		{name: "itself", chain: a, asked: "example.com/a", want: "dependency cycle: example.com/a → example.com/a"},
		{name: "same name, other labels", chain: b, asked: "example.com/b,version=2"},
		{name: "a URL in progress", chain: b, url: "https://s/a.aci", want: "dependency cycle: example.com/a → example.com/b,version=1 → example.com/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.chain.cycle(tt.asked, tt.url)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if b.depth() != 2 || (*link)(nil).depth() != 0 {
		t.Fatal("depth")
	}
}
