package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/nosecone/nscn/internal/testutil/registrytest"
)

// status of a row of the table.
type status string

const (
	pass     status = "pass"
	fail     status = "FAIL"
	info     status = "info"      // no target: shown for context
	na       status = "n/a"       // not available yet
	errored  status = "ERROR"     // could not be measured
	notValid status = "not valid" // -quick: too few runs to judge
)

// row is one line of the table.
type row struct {
	figure, ours, peer, ratio, target string
	status                            status
	detail                            string // for ERROR rows: why
}

// report collects the rows and the notes printed under the table.
type report struct {
	rows  []row
	notes []string
	quick bool
}

func (r *report) add(x row) {
	if r.quick && (x.status == pass || x.status == fail) {
		x.target += " (" + string(x.status) + ")"
		x.status = notValid
	}
	r.rows = append(r.rows, x)
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *report) failed(figure string, err error) {
	logf("%s: %v", figure, err)
	r.add(row{figure: figure, ours: "-", peer: "-", ratio: "-", target: "-", status: errored, detail: err.Error()})
}

// missed reports whether a target was missed or a figure not measured.
func (r *report) missed() bool {
	for _, x := range r.rows {
		if x.status == fail || x.status == errored {
			return true
		}
	}
	return false
}

func (r *report) print(w io.Writer) {
	_, _ = fmt.Fprintln(w, "| figure | ours | peer | ratio | target | result |")
	_, _ = fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, x := range r.rows {
		_, _ = fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", cell(x.figure), cell(x.ours), cell(x.peer), cell(x.ratio), cell(x.target), x.status)
	}
	met, targets := 0, 0
	for _, x := range r.rows {
		switch x.status {
		case pass:
			met, targets = met+1, targets+1
		case fail, errored:
			targets++
		}
	}
	if !r.quick {
		_, _ = fmt.Fprintf(w, "\n%d of %d targets met.\n", met, targets)
	}
	var errs []string
	for _, x := range r.rows {
		if x.status == errored {
			errs = append(errs, fmt.Sprintf("- %s: %s", x.figure, x.detail))
		}
	}
	if len(errs) > 0 {
		_, _ = fmt.Fprintln(w)
		_, _ = fmt.Fprintln(w, "Errors:")
		_, _ = fmt.Fprintln(w)
		for _, e := range errs {
			_, _ = fmt.Fprintln(w, e)
		}
	}
	if len(r.notes) > 0 {
		_, _ = fmt.Fprintln(w)
		_, _ = fmt.Fprintln(w, "Notes:")
		_, _ = fmt.Fprintln(w)
		for _, n := range r.notes {
			_, _ = fmt.Fprintln(w, "- "+n)
		}
	}
}

// machine describes the host, printed above the table.
func machine(ctx context.Context, nscn, work string) []string {
	var m []string
	add := func(k, v string) { m = append(m, fmt.Sprintf("- %s: %s", k, v)) }
	add("date", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	add("cpu", fmt.Sprintf("%s, %d cores", cpuModel(), nproc()))
	add("memory", memTotal())
	add("kernel", firstLine(ctx, "uname", "-srm"))
	add("os", osRelease())
	add("cgroups", cgroupLayout())
	add("load average at start", loadAvg()+" (other work on the machine skews the figures: compare ratios, rerun on a quiet host)")
	add("pid 1", strings.TrimSpace(readString("/proc/1/comm")))
	add("work directory", fmt.Sprintf("%s (%s)", work, fsType(work)))
	add("nscn", strings.Join(strings.Split(strings.TrimSpace(output(ctx, nscn, "version")), "\n"), "; "))
	add("go (bench)", runtime.Version())
	for _, t := range [][]string{
		{"hyperfine", "--version"},
		{"crun", "--version"},
		{"runc", "--version"},
		{"gzip", "--version"},
		{"tar", "--version"},
		{"sha512sum", "--version"},
		{"unshare", "--version"},
		{"podman", "--version"},
		{"skopeo", "--version"},
		{registrytest.Bin, "--version"},
	} {
		add(t[0], firstLine(ctx, t[0], t[1:]...))
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func nproc() int { return runtime.NumCPU() }

func memTotal() string {
	for l := range strings.SplitSeq(readString("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscan(v, &kb); err == nil {
				return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "unknown"
}

func osRelease() string {
	for l := range strings.SplitSeq(readString("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "unknown"
}

const (
	cgroup2Magic = 0x63677270
	tmpfsMagic   = 0x01021994
)

func cgroupLayout() string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil {
		return "unknown"
	}
	if st.Type == cgroup2Magic {
		return "v2 (unified)"
	}
	if err := syscall.Statfs("/sys/fs/cgroup/unified", &st); err == nil && st.Type == cgroup2Magic {
		return "hybrid (v1 controllers, cgroup2 without controllers at /sys/fs/cgroup/unified)"
	}
	return "v1 (legacy)"
}

func fsType(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case 0xef53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683e:
		return "btrfs"
	case tmpfsMagic:
		return "tmpfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("fs 0x%x", st.Type)
}

func readString(path string) string {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the bench's own work files
	if err != nil {
		return ""
	}
	return string(b)
}

func firstLine(ctx context.Context, name string, args ...string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(output(ctx, name, args...)), "\n")
	if l == "" {
		return "not found"
	}
	return l
}

// output runs a command and returns its stdout, or "" if it failed.
func output(ctx context.Context, name string, args ...string) string {
	b, err := exec.CommandContext(ctx, name, args...).Output() //nolint:gosec // G204: the bench runs the tools it measures, argv built here
	if err != nil {
		return ""
	}
	return string(b)
}

// runQuiet runs a command, keeping its output for the error only.
func runQuiet(ctx context.Context, name string, args ...string) error {
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...) //nolint:gosec // G204: the bench runs the tools it measures, argv built here
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", shellJoin(append([]string{name}, args...)), err, strings.TrimSpace(buf.String()))
	}
	return nil
}

// runOut runs a command and returns its stdout; stderr goes into the error.
func runOut(ctx context.Context, name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...) //nolint:gosec // G204: the bench runs the tools it measures, argv built here
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", shellJoin(append([]string{name}, args...)), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nscn-bench: "+format+"\n", args...)
}

// Formatting of the table's cells.

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func times(r float64) string { return fmt.Sprintf("%.2f×", r) }

func mb(bytes float64) string { return fmt.Sprintf("%.1f MB", bytes/1e6) }

func verdict(ok bool) status {
	if ok {
		return pass
	}
	return fail
}

// cell escapes a table cell for Markdown.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	f := strings.Fields(readString("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
