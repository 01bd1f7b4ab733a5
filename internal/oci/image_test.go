package oci

import (
	"errors"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		name, os, arch, want string
		wantErr              bool
	}{
		{name: "defaults", want: "linux/amd64"},
		{name: "arch", arch: "arm64", want: "linux/arm64"},
		{name: "variant", arch: "arm/v7", want: "linux/arm/v7"},
		{name: "os", os: "windows", arch: "amd64", want: "windows/amd64"},
		{name: "upper case", arch: "AMD64", wantErr: true},
		{name: "extra slash", arch: "arm/v7/x", wantErr: true},
		{name: "shell", os: "linux;rm", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePlatform(tt.os, tt.arch)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %v, %v", p, err)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Fatalf("got %q, %v; want %q", p, err, tt.want)
			}
		})
	}
}

func FuzzParsePlatform(f *testing.F) {
	f.Add("linux", "arm/v7")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, osName, arch string) {
		p, err := ParsePlatform(osName, arch)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error of the wrong class: %v", err)
			}
			return
		}
		again, err := ParsePlatform(p.OS, p.Arch+map[bool]string{true: "/" + p.Variant}[p.Variant != ""])
		if err != nil || again != p {
			t.Fatalf("%q does not parse back: %v %v", p, again, err)
		}
	})
}
