package entrypoint

import (
	"bytes"
	"strings"
	"testing"
)

func TestQemuStderr(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		failed bool
	}{
		{name: "nothing", writes: []string{"qemu-system-x86_64: warning: host doesn't support requested feature\n"}},
		{name: "in one write", writes: []string{"KVM internal error. Suberror: 1\nextra data[0]: 0x1\n"}, failed: true},
		{name: "split between writes", writes: []string{"x\nKVM inter", "nal error. Suberror: 1\n"}, failed: true},
		{name: "twice", writes: []string{"KVM internal error\n", "KVM internal error\n"}, failed: true},
		{name: "the stdin socket's notice dropped", writes: []string{"qemu-system-x86_64: -chardev socket,id=port0,path=kvm/stdin.sock,server=on,wait=on: info: QEMU waiting for connection on: disconnected:unix:kvm/stdin.sock,server=on\nother\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			failed := make(chan struct{})
			q := newQemuStderr(&out, failed)
			want := ""
			for _, w := range tt.writes {
				if n, err := q.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v", n, err)
				}
				if !strings.Contains(w, qemuWaitNotice) {
					want += w
				} else {
					want += "other\n"
				}
			}
			if out.String() != want {
				t.Errorf("passed on %q, want %q", out.String(), want)
			}
			select {
			case <-failed:
				if !tt.failed {
					t.Error("reported a KVM failure")
				}
			default:
				if tt.failed {
					t.Error("did not report the KVM failure")
				}
			}
		})
	}
}
