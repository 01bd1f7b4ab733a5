package stage1abi

import (
	"encoding/json"
	"testing"
)

func TestParseMountOptions(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int
		wantErr  bool
	}{
		{name: "empty list", in: `[]`},
		{name: "one", in: `[{"volume":"v","readOnly":"top","propagation":"rshared"}]`, want: 1},
		{name: "two", in: `[{"volume":"a","readOnly":"recursive"},{"volume":"b","propagation":"private"}]`, want: 2},
		{name: "volume only", in: `[{"volume":"a"}]`, want: 1},
		{name: "no volume", in: `[{"readOnly":"top"}]`, wantErr: true},
		{name: "twice", in: `[{"volume":"a"},{"volume":"a"}]`, wantErr: true},
		{name: "bad readOnly", in: `[{"volume":"a","readOnly":"yes"}]`, wantErr: true},
		{name: "bad propagation", in: `[{"volume":"a","propagation":"shared"}]`, wantErr: true},
		{name: "unknown field", in: `[{"volume":"a","recursive":true}]`, wantErr: true},
		{name: "not a list", in: `{"volume":"a"}`, wantErr: true},
		{name: "trailing data", in: `[] []`, wantErr: true},
		{name: "not json", in: `volume=a`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMountOptions(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseMountOptions(%s) error %v, want error %v", tc.in, err, tc.wantErr)
			}
			if len(got) != tc.want {
				t.Errorf("ParseMountOptions(%s) = %d entries, want %d", tc.in, len(got), tc.want)
			}
		})
	}
}

func FuzzParseMountOptions(f *testing.F) {
	f.Add(`[{"volume":"v","readOnly":"top","propagation":"rshared"}]`)
	f.Add(`[]`)
	f.Add(`[{"volume":"a"},{"volume":"a"}]`)
	f.Fuzz(func(t *testing.T, in string) {
		opts, err := ParseMountOptions(in)
		if err != nil {
			return
		}
		// What parses, written again, parses to the same.
		b, err := json.Marshal(opts)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseMountOptions(string(b))
		if err != nil || len(again) != len(opts) {
			t.Fatalf("round trip of %q: %v, %d entries, want %d", in, err, len(again), len(opts))
		}
	})
}
