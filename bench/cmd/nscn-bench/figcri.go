package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// criSummary is what the critest harness's benchmark mode writes
// (tests/cri, NSCN_CRI_BENCH): per runtime, each lifecycle operation's
// median, by critest's name of it.
type criSummary struct {
	Samples  int                                 `json:"samples"`
	Runtimes map[string]map[string]time.Duration `json:"runtimes"`
}

// criOps are the operations figure 10 shows, in critest's names: the
// first two carry the targets (pod start to ready, container
// start), the others are shown for context.
var criOps = []struct {
	name, what string
	target     bool
}{
	{"CreatePod", "pod start to ready (RunPodSandbox)", true},
	{"StartContainer", "container start (StartContainer)", true},
	{"CreateContainer", "container create (CreateContainer)", false},
	{"StopContainer", "container stop (StopContainer)", false},
	{"RemoveContainer", "container remove (RemoveContainer)", false},
	{"StopPod", "pod stop (StopPodSandbox)", false},
	{"RemovePod", "pod remove (RemovePodSandbox)", false},
}

// Figure 10 ("cri"): critest's pod and container lifecycle benchmarks
// (critest -benchmark) against Debian's containerd and `nscn cri`, one
// after the other in one run of the critest harness, which serves the
// stand-in images and starts both runtimes as make cri-test does.
func (b *bencher) figCri(ctx context.Context) {
	const fig = "10. CRI"
	if b.c.criTest == "" {
		b.r.failed(fig, fmt.Errorf("no -cri-test binary (make bench builds it: make cri-harness)"))
		return
	}
	out := filepath.Join(b.l.scratch, "cri")
	if err := os.RemoveAll(out); err != nil {
		b.r.failed(fig, err)
		return
	}
	// The harness reads its inputs (critest, nscn, the stand-ins' parts)
	// from the environment make gives the bench (CRI_TEST_ENV).
	cmd := exec.CommandContext(ctx, b.c.criTest, "-test.run=^TestCritest$", "-test.count=1", "-test.timeout=30m") //nolint:gosec // G204: the harness make built
	cmd.Dir = filepath.Dir(b.c.criTest)
	cmd.Env = append(os.Environ(), "NSCN_CRI_BENCH="+out)
	if o, err := cmd.CombinedOutput(); err != nil {
		b.r.failed(fig, fmt.Errorf("critest harness: %w\n%s", err, tail(o, 3000)))
		return
	}
	raw, err := os.ReadFile(filepath.Join(out, "summary.json")) //nolint:gosec // G304: the harness's output under the bench's scratch
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	var s criSummary
	if err := json.Unmarshal(raw, &s); err != nil {
		b.r.failed(fig, fmt.Errorf("summary.json: %w", err))
		return
	}
	ours, peer := s.Runtimes["nscn"], s.Runtimes["containerd"]
	for _, op := range criOps {
		n, okN := ours[op.name]
		c, okC := peer[op.name]
		if !okN || !okC || c <= 0 {
			b.r.failed(fmt.Sprintf("%s %s", fig, op.what), fmt.Errorf("critest reported no %s for both runtimes", op.name))
			continue
		}
		ratio := float64(n) / float64(c)
		x := row{figure: fmt.Sprintf("%s %s vs containerd", fig, op.what), ours: ms(n), peer: ms(c) + " containerd", ratio: times(ratio), target: "-", status: info}
		if op.target {
			x.target, x.status = "≤1.00×", verdict(ratio <= 1)
		}
		b.r.add(x)
	}
	b.r.note("10: `critest -benchmark` (cri-tools %s) through the critest harness (tests/cri, as make cri-test runs it: stand-in images on a loopback registry in private namespaces), its pod lifecycle benchmark (RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox) and its container lifecycle benchmark (Create, Start, Status, Stop, Remove of busybox containers in one pod), %d lifecycles each, sequential, against Debian's containerd (CRI plugin, runc) and then `nscn cri` (nspawn flavor); medians of critest's per-operation durations. RunPodSandbox returns when the pod is ready, for both. Target: nscn's pod start and container start no slower than containerd's.",
		criToolsVersion, s.Samples)
}

// criToolsVersion is the cri-tools release the Makefile builds critest from.
const criToolsVersion = "v1.37.0"

// tail is the last n bytes of b, for an error message.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
