package stage1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/store/tree"
)

// envHelper makes the test binary, run as an entrypoint, print its argv
// and working directory and exit with the status the variable holds.
const envHelper = "NSCN_STAGE1_TEST_ENTRYPOINT"

func TestMain(m *testing.M) {
	if st, ok := os.LookupEnv(envHelper); ok {
		wd, _ := os.Getwd()
		fmt.Printf("%s|%s\n", wd, strings.Join(os.Args, "|"))
		n, _ := strconv.Atoi(st)
		os.Exit(n) //nolint:forbidigo // the test binary as a fake entrypoint: its main
	}
	m.Run()
}

// helperTree is a tree whose /bin/real is this test binary, with
// /bin/entry a symlink to it, as multicall stage1s have them.
func helperTree(t *testing.T) *tree.Tree {
	t.Helper()
	treeDir, rootfs := treeFixture(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self) //nolint:gosec // G304: the test binary
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(filepath.Join(rootfs, "bin", "real"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755) //nolint:gosec // G302: an executable
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	symlink(t, "real", filepath.Join(rootfs, "bin", "multi"))
	return &tree.Tree{Key: "deps-sha512-x", Path: treeDir, Rootfs: rootfs}
}

func TestPodInvoke(t *testing.T) {
	tr := helperTree(t)
	podDir := t.TempDir()
	p := &Pod{Dir: podDir, Tree: tr, Entrypoints: Entrypoints{Run: "/bin/real", Enter: "bin/multi"}}
	tests := []struct {
		name       string
		entrypoint string
		status     int
		want       string // stdout; "" with class
		class      error
	}{
		{name: "argv[0] in the store's tree", entrypoint: p.Run, want: podDir + "|" + filepath.Join(tr.Rootfs, "bin", "real") + "|a|b\n"},
		{name: "a symlink keeps its name in argv[0]", entrypoint: p.Enter, want: podDir + "|" + filepath.Join(tr.Rootfs, "bin", "multi") + "|a|b\n"},
		{name: "status", entrypoint: p.Run, status: 7, want: podDir + "|" + filepath.Join(tr.Rootfs, "bin", "real") + "|a|b\n"},
		{name: "no such entrypoint", entrypoint: p.Stop, class: errdefs.ErrNotImplemented},
		{name: "not in the tree", entrypoint: "/bin/none", class: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			env := append(os.Environ(), envHelper+"="+strconv.Itoa(tt.status))
			st, err := p.Invoke(t.Context(), tt.entrypoint, []string{"a", "b"}, Stdio{Out: &out, Err: os.Stderr}, env)
			if tt.class != nil {
				if !errors.Is(err, tt.class) || out.Len() != 0 {
					t.Fatalf("Invoke = %d, %v, stdout %q; want class %v and nothing run", st, err, out.String(), tt.class)
				}
				return
			}
			if err != nil || st != tt.status || out.String() != tt.want {
				t.Fatalf("Invoke = %d, %v, stdout %q; want %d, %q", st, err, out.String(), tt.status, tt.want)
			}
		})
	}
}
