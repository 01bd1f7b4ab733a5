package sdpod

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestReadMDSToken(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil: no file
		want    string
		wantErr bool
	}{
		{name: "no file", want: ""},
		{name: "token and newline", content: ptr("abcDEF-123_xyzabcdefghij\n"), want: "abcDEF-123_xyzabcdefghij"},
		{name: "token without newline", content: ptr("tok_en"), want: "tok_en"},
		{name: "empty", content: ptr(""), wantErr: true},
		{name: "slash", content: ptr("a/b\n"), wantErr: true},
		{name: "two lines", content: ptr("a\nb\n"), wantErr: true},
		{name: "too long", content: ptr(string(make([]byte, 300))), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.content != nil {
				if err := os.WriteFile(filepath.Join(dir, stage1abi.MDSTokenFile), []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadMDSToken(dir)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ReadMDSToken = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func ptr(s string) *string { return &s }
