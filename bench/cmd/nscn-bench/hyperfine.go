package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// command is one command hyperfine times.
type command struct {
	name    string   // short label, e.g. "crun"
	argv    []string // run without a shell
	prepare string   // shell script run, untimed, before each run; "" for none
}

// sample is what one command measured.
type sample struct {
	name   string
	median time.Duration
	times  []time.Duration
}

// rounds is how many hyperfine invocations a measurement is split into.
// hyperfine runs all of one command's runs before the next command's, so
// a change in the machine's load between them (other work on a shared
// host) would land on one side of a ratio only. Splitting the runs into
// rounds, with the order of the commands reversed every other round,
// spreads such drift over every command.
const rounds = 3

// hyperfine times the commands, runs times each (rounded up to a multiple
// of rounds), and returns the median of each over all rounds. Commands
// run without a shell (-N), so no shell start-up is measured or
// subtracted. hyperfine's own report goes to stderr.
func hyperfine(ctx context.Context, scratch string, runs, warmup int, cmds ...command) ([]sample, error) {
	per := (runs + rounds - 1) / rounds
	samples := make([]sample, len(cmds))
	for i, c := range cmds {
		samples[i].name = c.name
	}
	for round := range rounds {
		order := make([]int, len(cmds))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		batch := make([]command, len(cmds))
		for k, i := range order {
			batch[k] = cmds[i]
		}
		w := warmup
		if round > 0 {
			w = min(warmup, 1) // the caches are warm by now
		}
		times, err := hyperfineOnce(ctx, scratch, per, w, batch)
		if err != nil {
			return nil, err
		}
		for k, i := range order {
			samples[i].times = append(samples[i].times, times[k]...)
		}
	}
	for i := range samples {
		samples[i].median = median(samples[i].times)
	}
	return samples, nil
}

// hyperfineOnce runs one hyperfine invocation and returns each command's
// run times.
func hyperfineOnce(ctx context.Context, scratch string, runs, warmup int, cmds []command) ([][]time.Duration, error) {
	out, err := os.MkdirTemp(scratch, "hyperfine-")
	if err != nil {
		return nil, fmt.Errorf("hyperfine: %w", err)
	}
	defer func() { _ = os.RemoveAll(out) }()
	jsonPath := filepath.Join(out, "result.json")
	args := []string{"-N", "--style", "basic", "--runs", fmt.Sprint(runs), "--warmup", fmt.Sprint(warmup), "--export-json", jsonPath}
	prepared := slices.ContainsFunc(cmds, func(c command) bool { return c.prepare != "" })
	for _, c := range cmds {
		args = append(args, "--command-name", c.name)
		if prepared {
			p := c.prepare
			if p == "" {
				p = "true"
			}
			// Under -N the preparation is split into words too: give
			// it its own shell.
			args = append(args, "--prepare", shellJoin([]string{"sh", "-euc", p}))
		}
	}
	for _, c := range cmds {
		args = append(args, shellJoin(c.argv))
	}
	logf("hyperfine: %s", strings.Join(names(cmds), ", "))
	cmd := exec.CommandContext(ctx, "hyperfine", args...) //nolint:gosec // G204: the bench runs the tools it measures, argv built here
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("hyperfine %s: %w", strings.Join(names(cmds), ", "), err)
	}
	b, err := os.ReadFile(jsonPath) //nolint:gosec // G304: the bench's own work files
	if err != nil {
		return nil, fmt.Errorf("hyperfine: %w", err)
	}
	var res struct {
		Results []struct {
			Times []float64 `json:"times"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("hyperfine: read %s: %w", jsonPath, err)
	}
	if len(res.Results) != len(cmds) {
		return nil, fmt.Errorf("hyperfine: %d results for %d commands", len(res.Results), len(cmds))
	}
	times := make([][]time.Duration, len(cmds))
	for i, r := range res.Results {
		for _, t := range r.Times {
			times[i] = append(times[i], time.Duration(t*float64(time.Second)))
		}
	}
	return times, nil
}

func names(cmds []command) []string {
	var n []string
	for _, c := range cmds {
		n = append(n, c.name)
	}
	return n
}

// median of durations; the mean of the two middle ones for an even count.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// shellQuote quotes one word for sh (and for hyperfine's word splitting).
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_./=:,+@%", r)
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
