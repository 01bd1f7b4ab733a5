//go:build functional

package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// benchEnv, when set, names a directory: instead of the validation specs,
// the harness runs critest's lifecycle benchmarks (-benchmark) against
// containerd and nscn, one after the other in one run, and leaves each
// runtime's results there as critest writes them
// (DIR/RUNTIME/pod_benchmark_data.json, container_benchmark_data.json),
// plus DIR/summary.json, the medians nscn-bench's figure 10 reads.
const benchEnv = "NSCN_CRI_BENCH"

// benchSamples is how many pod and container lifecycles each runtime
// runs: a pod start is a systemd boot for nscn, about a second on the
// loaded 2-core machines, so the figure costs about a minute.
const benchSamples = 10

// benchParams is critest's -benchmarking-params-file: the pod and
// container lifecycles, sequential (parallel lifecycles on two cores
// would measure the scheduler).
func benchParams(n int) string {
	return fmt.Sprintf("podsNumber: %d\npodsNumberParallel: 1\npodBenchmarkTimeoutSeconds: 120\n"+
		"containersNumber: %d\ncontainersNumberParallel: 1\ncontainerBenchmarkTimeoutSeconds: 120\n", n, n)
}

// benchSkip leaves out the benchmarks that are not lifecycles: the image
// ones (skipped by critest itself without an image count) and the pod and
// container from scratch, which reports only through ginkgo's report.
const benchSkip = "Image|from scratch"

// lifecycle is critest's JSON of one lifecycle benchmark.
type lifecycle struct {
	OperationsNames []string    `json:"operationsNames"`
	Datapoints      []datapoint `json:"datapoints"`
}

// datapoint is one lifecycle's durations, in the order of the operations.
type datapoint struct {
	OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
}

// medians are an operation's median durations, by its critest name.
func (l lifecycle) medians() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	if len(l.Datapoints) == 0 {
		return nil, fmt.Errorf("no datapoints")
	}
	for i, name := range l.OperationsNames {
		var ds []int64
		for _, d := range l.Datapoints {
			if len(d.OperationsDurationsNs) != len(l.OperationsNames) {
				return nil, fmt.Errorf("a datapoint has %d durations for %d operations", len(d.OperationsDurationsNs), len(l.OperationsNames))
			}
			ds = append(ds, d.OperationsDurationsNs[i])
		}
		slices.Sort(ds)
		m := ds[len(ds)/2]
		if len(ds)%2 == 0 {
			m = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
		}
		out[name] = time.Duration(m)
	}
	return out, nil
}

// BenchSummary is DIR/summary.json: per runtime, each operation's median
// over the samples, in nanoseconds.
type BenchSummary struct {
	Samples  int                                 `json:"samples"`
	Runtimes map[string]map[string]time.Duration `json:"runtimes"`
}

// runBench runs critest's lifecycle benchmarks against endpoint, its data
// into out, and returns the operations' medians.
func runBench(ctx context.Context, endpoint, dir, out, logPath string) (map[string]time.Duration, error) {
	if err := os.MkdirAll(out, 0o755); err != nil { //nolint:gosec // G703: the directory the bench names
		return nil, err
	}
	params := filepath.Join(dir, "bench-params.yaml")
	if err := os.WriteFile(params, []byte(benchParams(benchSamples)), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) //nolint:gosec // G304: a log under build/
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("NSCN_CRITEST"), //nolint:gosec // G204: critest built by make
		"-benchmark", "-runtime-endpoint="+endpoint, "-image-endpoint="+endpoint,
		"-benchmarking-params-file="+params, "-benchmarking-output-dir="+out,
		"-ginkgo.skip="+benchSkip, "-ginkgo.no-color", "-test.timeout=15m")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("critest -benchmark: %w (log %s)", err, logPath)
	}
	all := map[string]time.Duration{}
	for _, f := range []string{"pod_benchmark_data.json", "container_benchmark_data.json"} {
		b, err := os.ReadFile(filepath.Join(out, f)) //nolint:gosec // G304: critest's output
		if err != nil {
			return nil, fmt.Errorf("critest -benchmark wrote no %s (log %s): %w", f, logPath, err)
		}
		var l lifecycle
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		m, err := l.medians()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for k, v := range m {
			all[k] = v
		}
	}
	return all, nil
}

func TestLifecycleMedians(t *testing.T) {
	point := func(ns ...int64) datapoint { return datapoint{ns} }
	for _, tc := range []struct {
		name    string
		l       lifecycle
		want    map[string]time.Duration
		wantErr bool
	}{
		{"odd", lifecycle{[]string{"a", "b"}, []datapoint{point(3, 10), point(1, 30), point(2, 20)}}, map[string]time.Duration{"a": 2, "b": 20}, false},
		{"even", lifecycle{[]string{"a"}, []datapoint{point(4), point(1), point(2), point(10)}}, map[string]time.Duration{"a": 3}, false},
		{"none", lifecycle{[]string{"a"}, nil}, nil, true},
		{"short datapoint", lifecycle{[]string{"a", "b"}, []datapoint{point(1)}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.l.medians()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
