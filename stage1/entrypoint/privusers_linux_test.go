package entrypoint

import (
	"errors"
	"slices"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/internal/isolate"
)

func TestParseUIDMap(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    idrange.Range
		wantErr error
	}{
		{name: "a pod's", in: "         0  815726592      65536\n", want: idrange.Range{Base: 815726592, Count: 65536}},
		{name: "two lines", in: "0 815726592 1\n1 100000 65535\n", wantErr: errdefs.ErrFailedPrecondition},
		{name: "not from 0", in: "1 815726592 65536\n", wantErr: errdefs.ErrFailedPrecondition},
		{name: "host root", in: "0 0 65536\n", wantErr: errdefs.ErrInvalidArgument},
		{name: "empty", in: "", wantErr: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUIDMap(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseUIDMap(%q) = %v, %v; want %v", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseUIDMap(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestShiftCreds(t *testing.T) {
	r := idrange.Range{Base: 1 << 20, Count: idrange.Size}
	got, err := shiftCreds(isolate.Creds{UID: 0, GID: 1000, Groups: []uint32{10, 65535}}, r)
	if err != nil || got.UID != r.Base || got.GID != r.Base+1000 || !slices.Equal(got.Groups, []uint32{r.Base + 10, r.Base + 65535}) {
		t.Errorf("shiftCreds = %+v, %v", got, err)
	}
	for _, c := range []isolate.Creds{{UID: 65536}, {GID: 70000}, {Groups: []uint32{65536}}} {
		if _, err := shiftCreds(c, r); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("shiftCreds(%+v) = %v, want a refusal: the ID has no host ID in the pod's range", c, err)
		}
	}
}
