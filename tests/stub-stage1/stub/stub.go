// Package stub is the test-side half of the stub stage1 (the program in
// tests/stub-stage1): the records it leaves in the pod directory, the
// rules that drive it, and the helpers that compile it and pack it into a
// stage1 image (ACI) with the stage1 annotations of pkg/stage1abi.
//
// The stub does only the handshake of the stage1 ABI: for run it checks
// that stage0 handed it the pod lock (stage1abi.EnvLockFD), writes the pid
// file and one exit status per app, and exits with the first non-zero
// status; every entrypoint records its argv, working directory and
// environment. The end-to-end tests pack it with WriteACI, run stage0
// against it, and read what it saw with ReadRecords.
//
// It is test code: it runs in the test process (and the stub in stage1
// position), needs no privileges, and is imported only by tests.
package stub

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The entrypoints, named by the basename of argv[0] (or by argv[1] when
// argv[0] names none), and the annotation stage0 finds each under.
const (
	Run      = "run"
	Enter    = "enter"
	GC       = "gc"
	Stop     = "stop"
	AppAdd   = "app-add"
	AppRm    = "app-rm"
	AppStart = "app-start"
	AppStop  = "app-stop"
)

// Annotations maps each entrypoint to its stage1 image annotation.
var Annotations = map[string]string{
	Run:      stage1abi.AnnotationRun,
	Enter:    stage1abi.AnnotationEnter,
	GC:       stage1abi.AnnotationGC,
	Stop:     stage1abi.AnnotationStop,
	AppAdd:   stage1abi.AnnotationAppAdd,
	AppRm:    stage1abi.AnnotationAppRm,
	AppStart: stage1abi.AnnotationAppStart,
	AppStop:  stage1abi.AnnotationAppStop,
}

// BinDir is where the image puts the stub binary (Binary) and one hard
// link to it per entrypoint, inside the stage1 rootfs.
const (
	BinDir = "/stub-stage1/bin"
	Binary = "stub"
)

// Annotations that drive the stub, set in the pod manifest by the tests.
const (
	// AnnotationExitStatus, on a runtime app, is the exit status run
	// records for it (0-255). It wins over the app-name rule.
	AnnotationExitStatus = "stub.nosecone.dev/exit-status"
	// AnnotationSleep, on the pod, is how long run holds the lock before
	// exiting, as a Go duration ("2s"), so that a test can see the pod
	// running. SIGTERM or SIGINT ends the sleep early.
	AnnotationSleep = "stub.nosecone.dev/sleep"
	// AnnotationFail, on the pod, is a comma-separated list of
	// entrypoints other than run that exit with status 1, after
	// recording.
	AnnotationFail = "stub.nosecone.dev/fail"
)

// failPrefix is the app-name rule: an app named fail-N exits with N.
const failPrefix = "fail-"

// AppStatus is the exit status run records for ra when no signal ended
// it: the AnnotationExitStatus of the app, or N for an app named fail-N,
// or 0.
func AppStatus(ra schema.RuntimeApp) (int, error) {
	if v, ok := ra.Annotations.Get(AnnotationExitStatus); ok {
		return parseStatus(v)
	}
	if n, ok := strings.CutPrefix(ra.Name.String(), failPrefix); ok {
		return parseStatus(n)
	}
	return 0, nil
}

func parseStatus(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("exit status %q is not a number from 0 to 255", s)
	}
	return n, nil
}

// LockCheck is what run found out about the lock stage0 handed over.
type LockCheck struct {
	// FD is the descriptor number from stage1abi.EnvLockFD.
	FD int `json:"fd"`
	// PodDir: the descriptor names the pod directory.
	PodDir bool `json:"podDir"`
	// Held: the pod directory is locked, and through the descriptor: a
	// fresh open cannot lock it, the descriptor can.
	Held bool `json:"held"`
	// Err says what is wrong, when Held is false.
	Err string `json:"err,omitempty"`
}

// Record is one invocation of an entrypoint, one JSON line in the pod
// directory's RecordFile(entrypoint).
type Record struct {
	Entrypoint string   `json:"entrypoint"`
	Argv0      string   `json:"argv0"`
	Args       []string `json:"args"` // argv after argv[0] (and after the entrypoint name, when dispatched by it)
	Cwd        string   `json:"cwd"`
	PID        int      `json:"pid"`
	// Env holds the variables of the stage1 ABI: stage1abi.EnvLockFD and
	// stage1abi.EnvStage1Debug, when set.
	Env map[string]string `json:"env,omitempty"`
	// Lock is run's check of the pod lock.
	Lock *LockCheck `json:"lock,omitempty"`
	// PodManifest is the pod manifest as run read it.
	PodManifest json.RawMessage `json:"podManifest,omitempty"`
	// Statuses are the exit statuses run recorded, by app name.
	Statuses map[string]int `json:"statuses,omitempty"`
	// Signal names the signal that ended run's sleep.
	Signal string `json:"signal,omitempty"`
	// Exit is the status the entrypoint exited with.
	Exit int `json:"exit"`
	// Error says why it failed, if it did.
	Error string `json:"error,omitempty"`
}

// RecordFile is the name of the file, in the pod directory, that holds the
// records of one entrypoint.
func RecordFile(entrypoint string) string { return "stub-" + entrypoint + ".jsonl" }

// ReadRecords returns the records of one entrypoint in podDir, oldest
// first; none is not an error.
func ReadRecords(podDir, entrypoint string) ([]Record, error) {
	f, err := os.Open(filepath.Join(podDir, RecordFile(entrypoint))) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stub records: %w", err)
	}
	defer func() { _ = f.Close() }()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("parse stub record in %s: %w", f.Name(), err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stub records: %w", err)
	}
	return out, nil
}
