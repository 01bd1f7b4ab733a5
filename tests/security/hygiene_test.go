//go:build functional

package security

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// snapshot describes every path in e's data directory by its type,
// permissions and size, so that a refused command can be shown to have
// changed nothing.
func (e *env) snapshot() map[string]string {
	e.t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size := int64(0)
		if fi.Mode().IsRegular() {
			size = fi.Size()
		}
		m[p] = fmt.Sprintf("%v %d", fi.Mode(), size)
		return nil
	})
	if err != nil {
		e.t.Fatalf("snapshot %s: %v", e.dir, err)
	}
	return m
}

// snapshotDiff lists the paths whose description differs between two
// snapshots.
func snapshotDiff(before, after map[string]string) string {
	var d []string
	for _, p := range slices.Sorted(maps.Keys(after)) {
		if b, ok := before[p]; !ok {
			d = append(d, "new "+p)
		} else if b != after[p] {
			d = append(d, "changed "+p+": "+b+" -> "+after[p])
		}
	}
	for _, p := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[p]; !ok {
			d = append(d, "gone "+p)
		}
	}
	return strings.Join(d, "; ")
}

// oneLine fails unless r is a refusal on exactly one line of stderr,
// with nothing on stdout and no raw control character. Log records
// (level=…: the signature checks being off, the image file used) may
// come before it, and hold no raw control character either.
func oneLine(t *testing.T, r result) {
	t.Helper()
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
	for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		if hasControl(l) {
			t.Errorf("stderr holds a raw control character: %q", l)
		}
	}
	if lines := refusalLines(r.stderr); len(lines) != 1 || !strings.HasPrefix(lines[0], "nscn: ") {
		t.Errorf("stderr = %q, want one line starting with \"nscn: \"", r.stderr)
	}
}

// refusalLines are the lines of stderr that are not log records.
func refusalLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if !strings.HasPrefix(l, "level=") && !strings.HasPrefix(l, "time=") {
			out = append(out, l)
		}
	}
	return out
}

// hasControl reports whether s holds a C0 or C1 control character or DEL.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f })
}

// TestBadInputRefusedByStage0 is class 7 of Documentation/security.md: a
// mistyped or hostile command line (Documentation/commands.md, "Bad
// input"). Each bad value is
// refused by stage0 with exit 2 and one line on stderr, before anything
// is created or fetched: the data directory is as it was, and no pod
// exists.
func TestBadInputRefusedByStage0(t *testing.T) {
	e := newEnv(t)
	aci := image{name: "example.com/hygiene", app: app("0", "0", "/bin/true")}.build(t)
	e.ok("--insecure-options=image", "fetch", aci)
	before := e.snapshot()

	type bad struct {
		name string
		args []string
		want string
	}
	cases := []bad{
		{name: "unknown command", args: []string{"bogus"}, want: `unknown command "bogus"`},
		{name: "unknown subcommand", args: []string{"image", "bogus"}, want: `unknown command "bogus"`},
		{name: "help for an unknown command", args: []string{"help", "bogus"}, want: `"bogus"`},
		{name: "unknown fetch flag", args: []string{"fetch", "--bogus", aci}, want: "-bogus"},
		{name: "unknown global flag", args: []string{"--bogus", "list"}, want: "-bogus"},
		{name: "control character in a global flag", args: []string{"--local-config=/etc/\x1b[2J", "list"}, want: "--local-config"},
		{name: "run-prepared hostname with a newline", args: []string{"run-prepared", "--hostname=a\nb", "00000000-0000-4000-8000-000000000000"}, want: "--hostname"},
	}
	for _, f := range flavors {
		for _, c := range []bad{
			{name: "hostname with a newline", args: runArgs(t, f, "--hostname=evil\nnameserver 6.6.6.6", aci), want: "--hostname"},
			{name: "hostname not RFC 1123", args: runArgs(t, f, "--hostname=-x_y", aci), want: "--hostname"},
			{name: "300-character name", args: runArgs(t, f, aci, "--name="+strings.Repeat("a", 300)), want: "--name"},
			{name: "name with an escape", args: runArgs(t, f, aci, "--name=a\x1b[2Jb"), want: "--name"},
			{name: "negative memory", args: runArgs(t, f, aci, "--memory=-1"), want: "--memory"},
			{name: "zero cpu", args: runArgs(t, f, aci, "--cpu=0"), want: "--cpu"},
			{name: "empty volume mode 99999", args: runArgs(t, f, "--volume=scratch,kind=empty,mode=99999", aci, "--mount=volume=scratch,target=/scratch"), want: "mode"},
			{name: "empty volume negative uid", args: runArgs(t, f, "--volume=scratch,kind=empty,uid=-5", aci), want: "uid"},
			{name: "volume of an unknown kind", args: runArgs(t, f, "--volume=scratch,kind=tmpfs", aci), want: "--volume"},
			{name: "mount target relative", args: runArgs(t, f, aci, "--mount=volume=scratch,target=scratch"), want: "--mount"},
			{name: "port out of range", args: runArgs(t, f, "--port=web:70000", aci), want: "--port"},
			{name: "env name invalid", args: runArgs(t, f, aci, "--set-env=1X=y"), want: "--set-env"},
			{name: "net name invalid", args: runArgs(t, f, "--net=my net", aci), want: "--net"},
			{name: "unknown capability", args: runArgs(t, f, aci, "--caps-retain=CAP_NOPE"), want: "CAP_NOPE"},
			{name: "unknown run flag", args: runArgs(t, f, "--bogus", aci), want: "--bogus"},
		} {
			c.name = string(f) + ": " + c.name
			cases = append(cases, c)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.run(c.args...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("want exit 2 mentioning %q, got %s", c.want, r)
			}
			oneLine(t, r)
			if after := e.snapshot(); !maps.Equal(before, after) {
				t.Fatalf("the data directory changed: %s", snapshotDiff(before, after))
			}
		})
	}
	if pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*")); len(pods) != 0 {
		t.Fatalf("pods were created: %v", pods)
	}
}

// hostileLabel clears the screen, sets the terminal's title and forges a
// line of output, as an image's label.
const hostileLabel = "1.0\x1b[2J\x1b]0;pwned\x07\nforged"

// TestLabelsEscapedOnOutput is class 7 of Documentation/security.md: an
// image's label attacks the operator's terminal (Documentation/commands.md,
// "Output"): escape sequences
// are shown escaped by image list and by list, status and cat-manifest
// for a pod of the image, and JSON output stays JSON with the label's
// value intact.
func TestLabelsEscapedOnOutput(t *testing.T) {
	e := newEnv(t)
	aci := image{name: "example.com/labels", app: app("1000", "1000", "/bin/true"), labels: map[string]string{"version": hostileLabel}}.build(t)
	e.ok("--insecure-options=image", "fetch", aci)

	r := e.ok("image", "list", "--no-legend", "--fields=name")
	if hasControl(strings.TrimSuffix(r.stdout, "\n")) || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("image list prints raw control characters or forged lines: %q", r.stdout)
	}
	if want := `example.com/labels:1.0\x1b[2J\x1b]0;pwned\x07\x0aforged`; strings.TrimSpace(r.stdout) != want {
		t.Fatalf("image list shows %q, want %q", r.stdout, want)
	}
	r = e.ok("image", "list", "--format=json")
	var images []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &images); err != nil || len(images) != 1 || images[0].Labels["version"] != hostileLabel {
		t.Fatalf("image list --format=json: %v, %+v\n%s", err, images, r.stdout)
	}

	e.ok(runArgs(t, fly, aci)...)
	uuid := filepath.Base(e.podDir())
	r = e.ok("list", "--no-legend")
	if hasControl(strings.ReplaceAll(strings.ReplaceAll(r.stdout, "\n", ""), "\t", "")) || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `labels:1.0\x1b[2J`) {
		t.Fatalf("list shows %q, want the label escaped on one row", r.stdout)
	}
	for _, args := range [][]string{{"status", uuid}, {"status", "--format=json", uuid}, {"list", "--format=json"}, {"cat-manifest", uuid}} {
		r := e.ok(args...)
		if hasControl(strings.ReplaceAll(strings.ReplaceAll(r.stdout, "\n", ""), "\t", "")) {
			t.Errorf("%s prints raw control characters: %q", strings.Join(args, " "), r.stdout)
		}
		if strings.Contains(strings.Join(args, " "), "json") || args[0] == "cat-manifest" {
			if !json.Valid([]byte(r.stdout)) {
				t.Errorf("%s is not JSON: %s", strings.Join(args, " "), r.stdout)
			}
		}
	}
}
