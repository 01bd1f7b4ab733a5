package vm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The marker lines scripts/vm/init.sh writes around each script's output.
const (
	markBegin  = "@@nscn-vm begin "
	markEnd    = "@@nscn-vm end "
	markDone   = "@@nscn-vm done"
	markFailed = "@@nscn-vm failed "
	markUp     = "nscn-vm-init: up after "
)

// parseConsole reads the console output of one boot: the results between
// the markers, and the boot time the init reported. It always returns a
// Run (with Serial set); the error says what is missing or malformed.
func parseConsole(serial string) (*Run, error) {
	serial = strings.ReplaceAll(serial, "\r", "")
	run := &Run{Serial: serial}
	var (
		cur  *Result
		out  strings.Builder
		done bool
	)
	for line := range strings.Lines(serial) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case cur != nil && strings.HasPrefix(line, markEnd):
			name, status, ok := strings.Cut(strings.TrimPrefix(line, markEnd), " status=")
			code, err := strconv.Atoi(status)
			if !ok || err != nil || name != cur.Name {
				return run, fmt.Errorf("vm: malformed end marker %q for script %s", line, cur.Name)
			}
			// The init adds a newline after each output.
			cur.Output = strings.TrimSuffix(out.String(), "\n")
			cur.Status = code
			run.Results = append(run.Results, *cur)
			cur = nil
		case cur != nil:
			out.WriteString(line)
			out.WriteByte('\n')
		case strings.HasPrefix(line, markBegin):
			cur = &Result{Name: strings.TrimPrefix(line, markBegin)}
			out.Reset()
		case strings.HasPrefix(line, markFailed):
			return run, fmt.Errorf("vm: init failed: %s", strings.TrimPrefix(line, markFailed))
		case line == markDone:
			done = true
		case strings.HasPrefix(line, markUp):
			secs, _, _ := strings.Cut(strings.TrimPrefix(line, markUp), "s")
			if f, err := strconv.ParseFloat(secs, 64); err == nil {
				run.Boot = time.Duration(f * float64(time.Second))
			}
		}
	}
	switch {
	case cur != nil:
		return run, fmt.Errorf("vm: script %s did not finish", cur.Name)
	case !done:
		return run, fmt.Errorf("vm: the init did not report the end of the scripts")
	}
	return run, nil
}
