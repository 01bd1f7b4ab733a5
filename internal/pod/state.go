package pod

import (
	"fmt"
	"path/filepath"
)

// State is the lifecycle state of a pod, derived from its state directory
// and its lock.
type State int

// The states. The comment says where the pod is and who holds its lock.
const (
	// Embryo: in embryo/, locked by the stage0 that is creating it.
	Embryo State = iota + 1
	// Preparing: in prepare/, locked by the stage0 preparing it.
	Preparing
	// AbortedPrepare: in embryo/ or prepare/ and unlocked: the stage0
	// creating or preparing it died. Garbage collection discards it.
	AbortedPrepare
	// Prepared: in prepared/, ready to be run; may be locked briefly by a
	// stage0 starting it.
	Prepared
	// Running: in run/, locked by stage1 (or by stage0 about to exec it).
	Running
	// Exited: in run/ and unlocked.
	Exited
	// ExitedGarbage: in exited-garbage/, unlocked: marked by garbage
	// collection, waiting for the grace period and the stage1 gc.
	ExitedGarbage
	// Garbage: in garbage/, unlocked: to be removed.
	Garbage
	// Deleting: in exited-garbage/ or garbage/ and locked by the process
	// removing it.
	Deleting
)

func (s State) String() string {
	switch s {
	case Embryo:
		return "embryo"
	case Preparing:
		return "preparing"
	case AbortedPrepare:
		return "aborted prepare"
	case Prepared:
		return "prepared"
	case Running:
		return "running"
	case Exited:
		return "exited"
	case ExitedGarbage:
		return "exited garbage"
	case Garbage:
		return "garbage"
	case Deleting:
		return "deleting"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// PodsDir is the directory of the pods under the data directory.
const PodsDir = "pods"

// The state directories under PodsDir.
const (
	dirEmbryo        = "embryo"
	dirPrepare       = "prepare"
	dirPrepared      = "prepared"
	dirRun           = "run"
	dirExitedGarbage = "exited-garbage"
	dirGarbage       = "garbage"
)

// stateDirs lists the state directories in transition order: every move
// goes from a directory to one later in this list. Scanning them in this
// order therefore never misses a pod that moves during the scan (it may see
// it twice).
var stateDirs = []string{dirEmbryo, dirPrepare, dirPrepared, dirRun, dirExitedGarbage, dirGarbage}

// needsProbe reports whether the state of a pod in dir depends on its
// lock.
func needsProbe(dir string) bool { return dir != dirPrepared }

// deriveState is the state of a pod in dir, locked or not.
func deriveState(dir string, locked bool) State {
	switch dir {
	case dirEmbryo:
		if locked {
			return Embryo
		}
		return AbortedPrepare
	case dirPrepare:
		if locked {
			return Preparing
		}
		return AbortedPrepare
	case dirPrepared:
		return Prepared
	case dirRun:
		if locked {
			return Running
		}
		return Exited
	case dirExitedGarbage:
		if locked {
			return Deleting
		}
		return ExitedGarbage
	case dirGarbage:
		if locked {
			return Deleting
		}
		return Garbage
	}
	return 0
}

func stateDirPath(dataDir, dir string) string { return filepath.Join(dataDir, PodsDir, dir) }

func podPath(dataDir, dir, uuid string) string {
	return filepath.Join(dataDir, PodsDir, dir, uuid)
}
