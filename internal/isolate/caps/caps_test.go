package caps

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Cap
		wantErr bool
	}{
		{name: "first", in: "CAP_CHOWN", want: Chown},
		{name: "last", in: "CAP_CHECKPOINT_RESTORE", want: Last},
		{name: "net bind", in: "CAP_NET_BIND_SERVICE", want: NetBindService},
		{name: "no prefix", in: "CHOWN", wantErr: true},
		{name: "lower case", in: "cap_chown", wantErr: true},
		{name: "unknown", in: "CAP_FLY", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("Parse(%q) error = %v, want invalid argument", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSetJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		set  Set
		json string
	}{
		{name: "empty", set: 0, json: `[]`},
		{name: "two", set: Of(NetRaw, Chown), json: `["CAP_CHOWN","CAP_NET_RAW"]`},
		{name: "last", set: Of(Last), json: `["CAP_CHECKPOINT_RESTORE"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.set)
			if err != nil || string(b) != tt.json {
				t.Fatalf("Marshal = %s, %v; want %s", b, err, tt.json)
			}
			var back Set
			if err := json.Unmarshal(b, &back); err != nil || back != tt.set {
				t.Fatalf("Unmarshal = %v, %v; want %v", back, err, tt.set)
			}
		})
	}
	var s Set
	if err := json.Unmarshal([]byte(`["CAP_NOPE"]`), &s); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unknown name: error = %v", err)
	}
}

func TestDefaultIsTheSpecSet(t *testing.T) {
	want := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
		"CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
	}
	got := Default.Names()
	if len(got) != len(want) {
		t.Fatalf("Default = %v, want the 14 of spec/ace.md", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Default = %v, want %v", got, want)
		}
	}
}

func TestAll(t *testing.T) {
	if got := All(Last).Len(); got != int(Last)+1 {
		t.Fatalf("All(Last) has %d capabilities, want %d", got, Last+1)
	}
	if All(63) != ^Set(0) {
		t.Fatal("All(63) is not every bit")
	}
}

func TestSetsValidate(t *testing.T) {
	d := Default
	tests := []struct {
		name string
		sets Sets
		ok   bool
	}{
		{name: "default", sets: Sets{Bounding: d, Effective: d, Permitted: d}, ok: true},
		{name: "ambient", sets: Sets{Bounding: d, Effective: d, Permitted: d, Inheritable: Of(Chown), Ambient: Of(Chown)}, ok: true},
		{name: "effective not permitted", sets: Sets{Bounding: d, Effective: d, Permitted: Of(Chown)}},
		{name: "permitted outside bounding", sets: Sets{Bounding: Of(Chown), Permitted: d}},
		{name: "inheritable outside bounding", sets: Sets{Bounding: Of(Chown), Inheritable: Of(SysAdmin)}},
		{name: "ambient not inheritable", sets: Sets{Bounding: d, Permitted: d, Ambient: Of(Chown)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sets.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error class: %v", err)
			}
		})
	}
}
