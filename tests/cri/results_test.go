//go:build functional

package cri

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// spec is one critest spec's outcome, from ginkgo's JSON report.
type spec struct {
	State    string // passed, failed, skipped, panicked, timedout, …
	Attempts int    // 0: left out by the selection, never run
	Message  string // why it failed or skipped itself
}

func (s *spec) detail() string {
	if s == nil {
		return "not in the report"
	}
	if s.Message == "" {
		return s.State
	}
	m, _, _ := strings.Cut(s.Message, "\n")
	return s.State + ": " + m
}

// run is one critest run: each spec by its full name (containers' texts
// and the leaf's, space separated, as ginkgo prints it).
type run struct {
	specs   map[string]*spec
	elapsed time.Duration
}

// parseReport reads ginkgo's JSON report (-ginkgo.json-report): an array
// of suite reports, each with its spec reports; only It nodes are specs.
func parseReport(b []byte) (*run, error) {
	var suites []struct {
		SpecReports []struct {
			ContainerHierarchyTexts []string
			LeafNodeText            string
			LeafNodeType            string
			State                   string
			NumAttempts             int
			Failure                 struct{ Message string }
		}
	}
	if err := json.Unmarshal(b, &suites); err != nil {
		return nil, err
	}
	r := &run{specs: map[string]*spec{}}
	for _, s := range suites {
		for _, sr := range s.SpecReports {
			if sr.LeafNodeType != "It" {
				continue
			}
			name := strings.Join(append(slices.Clone(sr.ContainerHierarchyTexts), sr.LeafNodeText), " ")
			for i := 2; r.specs[name] != nil; i++ {
				name = fmt.Sprintf("%s (#%d)", strings.TrimSuffix(name, fmt.Sprintf(" (#%d)", i-1)), i)
			}
			r.specs[name] = &spec{State: sr.State, Attempts: sr.NumAttempts, Message: sr.Failure.Message}
		}
	}
	if len(r.specs) == 0 {
		return nil, fmt.Errorf("no specs in the report")
	}
	return r, nil
}

// counts are the run's numbers: specs run (not left out by the
// selection), passed, and the same for the [Conformance] ones.
func (r *run) counts() (ran, passed, confRan, confPassed int) {
	for name, s := range r.specs {
		if s.Attempts == 0 {
			continue
		}
		conf := strings.Contains(name, "[Conformance]")
		ran++
		if conf {
			confRan++
		}
		if s.State == "passed" {
			passed++
			if conf {
				confPassed++
			}
		}
	}
	return ran, passed, confRan, confPassed
}

func (r *run) summary() string {
	ran, passed, confRan, confPassed := r.counts()
	return fmt.Sprintf("%d of %d specs passed, %d of %d conformance", passed, ran, confPassed, confRan)
}

// passed is the sorted names of the specs that passed.
func (r *run) passed() []string {
	var names []string
	for name, s := range r.specs {
		if s.State == "passed" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// state is the column of a spec: its state, or "-" when left out.
func (r *run) state(name string) string {
	s := r.specs[name]
	switch {
	case s == nil:
		return "absent"
	case s.Attempts == 0:
		return "-"
	}
	return s.State
}

// sideBySide is results.txt: the counts, then one line per spec with
// containerd's and nscn's states, and the reason of each nscn failure.
func sideBySide(containerd, nscn *run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# critest v1.37.0, skipping %s (\"-\": left out by that selection)\n", skip)
	fmt.Fprintf(&b, "# containerd: %s (%v)\n# nscn:       %s (%v)\n", containerd.summary(), containerd.elapsed.Round(time.Second),
		nscn.summary(), nscn.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "%-10s %-10s %s\n", "containerd", "nscn", "spec")
	names := map[string]bool{}
	for n := range containerd.specs {
		names[n] = true
	}
	for n := range nscn.specs {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	for _, n := range sorted {
		fmt.Fprintf(&b, "%-10s %-10s %s\n", containerd.state(n), nscn.state(n), n)
		if s := nscn.specs[n]; s != nil && s.Attempts > 0 && s.State != "passed" && s.Message != "" {
			fmt.Fprintf(&b, "%21s nscn: %s\n", "", oneLine(s.Message))
		}
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// readList reads a ratchet file: one spec name a line; # starts a comment.
func readList(path string) ([]string, error) {
	f, err := os.Open(path) //nolint:gosec // G304: a tracked list of this suite
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			names = append(names, l)
		}
	}
	return names, sc.Err()
}

// ratchet compares a list of specs that passed before with a run: lost
// are those that no longer pass, gained those that pass and are not
// listed.
func ratchet(want []string, r *run) (lost, gained []string) {
	for _, n := range want {
		if s := r.specs[n]; s == nil || s.State != "passed" {
			lost = append(lost, n)
		}
	}
	for _, n := range r.passed() {
		if !slices.Contains(want, n) {
			gained = append(gained, n)
		}
	}
	return lost, gained
}

func TestRatchet(t *testing.T) {
	r := &run{specs: map[string]*spec{
		"a": {State: "passed", Attempts: 1}, "b": {State: "failed", Attempts: 1},
		"c": {State: "passed", Attempts: 1}, "d": {State: "skipped"},
	}}
	for _, tc := range []struct {
		name         string
		want         []string
		lost, gained []string
	}{
		{name: "all kept", want: []string{"a", "c"}},
		{name: "one failing now", want: []string{"a", "b"}, lost: []string{"b"}, gained: []string{"c"}},
		{name: "one gone from the suite", want: []string{"a", "c", "e"}, lost: []string{"e"}},
		{name: "one left out", want: []string{"d"}, lost: []string{"d"}, gained: []string{"a", "c"}},
		{name: "empty list", gained: []string{"a", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lost, gained := ratchet(tc.want, r)
			if !slices.Equal(lost, tc.lost) || !slices.Equal(gained, tc.gained) {
				t.Fatalf("ratchet(%v) = lost %v, gained %v; want %v, %v", tc.want, lost, gained, tc.lost, tc.gained)
			}
		})
	}
}

func TestParseReport(t *testing.T) {
	report := `[{"SpecReports":[
	 {"ContainerHierarchyTexts":["[sig-node] Image Manager"],"LeafNodeText":"pull [Conformance]","LeafNodeType":"It","State":"passed","NumAttempts":1},
	 {"ContainerHierarchyTexts":["[sig-node] PodSandbox"],"LeafNodeText":"runs","LeafNodeType":"It","State":"failed","NumAttempts":1,"Failure":{"Message":"Unimplemented\nmore"}},
	 {"ContainerHierarchyTexts":["[sig-node] SELinux"],"LeafNodeText":"labels","LeafNodeType":"It","State":"skipped","NumAttempts":0},
	 {"LeafNodeType":"SynchronizedBeforeSuite","State":"passed","NumAttempts":1}]}]`
	r, err := parseReport([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.summary(), "1 of 2 specs passed, 1 of 1 conformance"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if got := r.specs["[sig-node] PodSandbox runs"].detail(); got != "failed: Unimplemented" {
		t.Errorf("detail %q", got)
	}
	if _, err := parseReport([]byte(`[]`)); err == nil {
		t.Error("an empty report parsed")
	}
	if _, err := parseReport([]byte(`{`)); err == nil {
		t.Error("a broken report parsed")
	}
}
