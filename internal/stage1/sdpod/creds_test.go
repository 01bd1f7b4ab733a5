package sdpod

import (
	"reflect"
	"testing"
)

func TestAppCredsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    AppCreds
	}{
		{name: "root", c: AppCreds{Groups: []uint32{}}},
		{name: "user with groups", c: AppCreds{UID: 1000, GID: 1000, Groups: []uint32{1001, 4}}},
		{name: "nobody", c: AppCreds{UID: 65534, GID: 65534, Groups: []uint32{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeAppCreds(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseAppCreds(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.c) {
				t.Fatalf("got %+v, want %+v", got, tt.c)
			}
		})
	}
}

func TestParseAppCredsRefuses(t *testing.T) {
	tests := []struct{ name, in string }{
		{name: "empty", in: ""},
		{name: "truncated", in: `{"uid":0,"gi`},
		{name: "no uid", in: `{"gid":0}`},
		{name: "no gid", in: `{"uid":0}`},
		{name: "negative", in: `{"uid":-1,"gid":0}`},
		{name: "too big", in: `{"uid":4294967296,"gid":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := ParseAppCreds([]byte(tt.in)); err == nil {
				t.Fatalf("ParseAppCreds(%q) = %+v, want an error", tt.in, c)
			}
		})
	}
}

func FuzzParseAppCreds(f *testing.F) {
	f.Add([]byte(`{"uid":1000,"gid":1000,"groups":[1001]}`))
	f.Add([]byte(`{"uid":0,"gid":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseAppCreds(b)
		if err != nil {
			return
		}
		enc, err := EncodeAppCreds(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseAppCreds(enc)
		if err != nil || !reflect.DeepEqual(normal(again), normal(c)) {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
	})
}

func normal(c AppCreds) AppCreds {
	if c.Groups == nil {
		c.Groups = []uint32{}
	}
	return c
}
