//go:build functional

package registry

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// criMetric is one metric of `crictl metricsp -o json`.
type criMetric struct {
	Name        string   `json:"name"`
	LabelValues []string `json:"labelValues"`
	Value       struct {
		Value json.RawMessage `json:"value"` // a number, or a string (protojson's uint64)
	} `json:"value"`
}

func (m criMetric) value(t *testing.T) uint64 {
	t.Helper()
	s := strings.Trim(string(m.Value.Value), `"`)
	if s == "" {
		return 0 // protojson leaves a zero out
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("metric %s: value %s: %v", m.Name, m.Value.Value, err)
	}
	return n
}

// TestCRIMetrics runs a pod with a limited container on the default
// network, writes 8 MiB into its writable layer, and reads the CRI
// metrics crictl lists: the limits the container was created with, usage
// read from its cgroups and processes, the bytes its writable layer
// holds, its start time, and its pod's network counters.
func TestCRIMetrics(t *testing.T) {
	h := newCRIHarness(t)
	podID, podCfg := h.runPod("metrics", map[string]any{"log_directory": filepath.Join(h.dir, "logs")})
	ctrID := h.startContainer(podID, podCfg, "main", map[string]any{
		"command":  []string{"/bin/sh", "-c", "head -c 8388608 /dev/zero > /blob; echo done > /tmp/started; exec sleep 300"},
		"log_path": "main.log",
		"linux": map[string]any{"resources": map[string]any{
			"cpu_period": 100000, "cpu_quota": 20000, "cpu_shares": 512,
			"memory_limit_in_bytes": 64 << 20,
		}},
	})
	started := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := h.crictl(true, "exec", "--sync", ctrID, "/bin/sh", "-c", "cat /tmp/started 2>/dev/null; true")
		if strings.TrimSpace(out) == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not write its blob: %q", out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	out, _ := h.crictl(true, "metricdescs", "-o", "json")
	var descs struct {
		Descriptors []struct {
			Name      string   `json:"name"`
			LabelKeys []string `json:"labelKeys"`
		} `json:"descriptors"`
	}
	if err := json.Unmarshal([]byte(out), &descs); err != nil || len(descs.Descriptors) == 0 {
		t.Fatalf("metricdescs: %v\n%s", err, out)
	}
	keys := map[string]int{}
	for _, d := range descs.Descriptors {
		keys[d.Name] = len(d.LabelKeys)
	}

	out, _ = h.crictl(true, "metricsp", "-o", "json")
	var resp struct {
		PodMetrics []struct {
			PodSandboxID     string      `json:"podSandboxId"`
			Metrics          []criMetric `json:"metrics"`
			ContainerMetrics []struct {
				ContainerID string      `json:"containerId"`
				Metrics     []criMetric `json:"metrics"`
			} `json:"containerMetrics"`
		} `json:"podMetrics"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("metricsp: %v\n%s", err, out)
	}
	pod := map[string]criMetric{}
	ctr := map[string]criMetric{}
	for _, pm := range resp.PodMetrics {
		if pm.PodSandboxID != podID {
			continue
		}
		for _, m := range pm.Metrics {
			pod[m.Name+"/"+strings.Join(m.LabelValues[6:], "/")] = m
		}
		for _, cm := range pm.ContainerMetrics {
			if cm.ContainerID != ctrID {
				continue
			}
			for _, m := range cm.Metrics {
				if len(m.LabelValues) != keys[m.Name] {
					t.Errorf("metric %s has %d label values, its descriptor %d keys", m.Name, len(m.LabelValues), keys[m.Name])
				}
				if m.LabelValues[0] != "main" || m.LabelValues[1] != ctrID || m.LabelValues[4] != "default" || m.LabelValues[5] != "metrics" {
					t.Errorf("metric %s labels %q", m.Name, m.LabelValues)
				}
				if _, seen := ctr[m.Name]; !seen {
					ctr[m.Name] = m
				}
			}
		}
	}
	if len(ctr) == 0 {
		t.Fatalf("no metrics of container %s:\n%s", ctrID, out)
	}
	get := func(name string) uint64 {
		t.Helper()
		m, ok := ctr[name]
		if !ok {
			t.Fatalf("no %s of the container:\n%s", name, out)
		}
		return m.value(t)
	}
	for _, c := range []struct {
		name string
		want uint64
	}{
		{"container_spec_cpu_period", 100000},
		{"container_spec_cpu_quota", 20000},
		{"container_spec_cpu_shares", 512},
		{"container_spec_memory_limit_bytes", 64 << 20},
	} {
		if got := get(c.name); got != c.want {
			t.Errorf("%s = %d, want %d", c.name, got, c.want)
		}
	}
	if n := get("container_memory_usage_bytes"); n == 0 || n > 64<<20 {
		t.Errorf("container_memory_usage_bytes = %d, want above 0 and within the 64 MiB limit", n)
	}
	if n := get("container_fs_usage_bytes"); n < 8<<20 {
		t.Errorf("container_fs_usage_bytes = %d, want at least the 8 MiB blob", n)
	}
	if n := get("container_fs_limit_bytes"); n < 8<<20 {
		t.Errorf("container_fs_limit_bytes = %d, want the size of a filesystem", n)
	}
	if n := get("container_processes"); n < 1 {
		t.Errorf("container_processes = %d, want sleep at least", n)
	}
	if n := get("container_threads"); n < 1 {
		t.Errorf("container_threads = %d", n)
	}
	if n := get("container_file_descriptors"); n < 3 {
		t.Errorf("container_file_descriptors = %d, want sleep's stdio at least", n)
	}
	if st, at := get("container_start_time_seconds"), uint64(started.Unix()); st+60 < at || st > at+5 { //nolint:gosec // G115: after 1970
		t.Errorf("container_start_time_seconds = %d, started about %d", st, started.Unix())
	}
	if _, ok := pod["container_network_receive_bytes_total/eth0"]; !ok {
		t.Errorf("no network counters of the pod's eth0; pod metrics:\n%v", pod)
	}
	h.removePod(podID)
}
