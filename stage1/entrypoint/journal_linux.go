package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The pod's journal (Documentation/logging.md):
//
//	app ─stdout pipe─▶ app helper ─▶ journald stream, priority 6 ─┐
//	    ─stderr pipe─▶ (the shim)  ─▶ journald stream, priority 3 ─┴▶ /var/log/journal/ID
//	                               ─▶ /nscn/io/APP/stdout, stderr ─▶ run ─▶ terminal
//
// The helper opens the two streams itself (the unit's StandardOutput=
// journal is one connection for stdout and stderr both, and carries the
// helper's own messages): journald takes the unit from the helper's
// cgroup (_SYSTEMD_UNIT), the identifier and priority from the stream's
// header, and /var/log/journal/ID is PODDIR/journal/ID.
//
// run creates PODDIR/journal/ID (ID: stage1abi.MachineID), binds
// PODDIR/journal on the pod's /var/log/journal, writes ID as the pod's
// /etc/machine-id and links the host's /var/log/journal/ID to the pod's
// directory, as rkt did, when the host has a /var/log/journal. The gc
// entrypoint removes that link.

// hostJournalDir is the host's persistent journal directory, a variable
// for tests.
var hostJournalDir = "/var/log/journal"

// machineID is the form of a machine ID (machine-id(5)).
var machineID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// journalApps sends the output of the pod's apps to its journal, but
// that of an app on the console (console), and lets the apps whose image
// declares sdpod.NotifyAnnotation say READY=1 themselves.
func journalApps(podDir string, pod *sdpod.Pod, console bool) error {
	for i := range pod.Apps {
		a := &pod.Apps[i]
		a.Journal = !console
		p := filepath.Join(podDir, stage1abi.AppInfoDir(a.Spec.Name), stage1abi.AppManifestFile)
		b, err := os.ReadFile(p) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
		if err != nil {
			return fmt.Errorf("app %s: read image manifest: %w", a.Spec.Name, err)
		}
		var im schema.ImageManifest
		if err := im.UnmarshalJSON(b); err != nil {
			return errdefs.Newf(errdefs.ErrInvalidArgument, "app %s: parse image manifest %s: %w", a.Spec.Name, p, err)
		}
		if sdpod.SupportsNotify(&im) {
			sdpod.EnableNotify(a)
		}
	}
	return nil
}

// setupJournal prepares the pod's journal before the pod starts and
// returns the bind of its directory into the pod.
func setupJournal(ctx context.Context, log *slog.Logger, podDir, uuid string) (sdpod.Bind, error) {
	id := stage1abi.MachineID(uuid)
	if !machineID.MatchString(id) {
		return sdpod.Bind{}, errdefs.InvalidArgument("pod UUID %q does not make a machine ID", uuid)
	}
	dir := filepath.Join(podDir, stage1abi.JournalDir)
	// As the rest of the pod directory (Documentation/security.md):
	// journald makes its files 0640 itself.
	if err := os.Mkdir(dir, 0o750); err != nil {
		return sdpod.Bind{}, fmt.Errorf("create journal directory: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, id), 0o750); err != nil {
		return sdpod.Bind{}, fmt.Errorf("create journal directory: %w", err)
	}
	// The image's /etc/machine-id is empty: systemd would make up a
	// random ID at each start, and journald name its directory so.
	mid := inStage1(podDir, sdpod.MachineIDFile)
	if err := os.WriteFile(mid, []byte(id+"\n"), 0o444); err != nil {
		return sdpod.Bind{}, fmt.Errorf("write the pod's machine ID: %w", err)
	}
	linkJournal(ctx, log, filepath.Join(dir, id), id)
	return sdpod.Bind{Source: dir, Target: sdpod.JournalMountDir}, nil
}

// linkJournal links the host's /var/log/journal/ID to the pod's journal
// directory, so that the host's journalctl (-m, -M, -D) finds it. A
// failure is not the pod's: the journal is still read from the pod
// directory (nscn logs); it is reported, and the pod runs.
func linkJournal(ctx context.Context, log *slog.Logger, target, id string) {
	if st, err := os.Stat(hostJournalDir); err != nil || !st.IsDir() {
		log.DebugContext(ctx, "journal not linked: the host has no persistent journal directory", "dir", hostJournalDir)
		return
	}
	link := filepath.Join(hostJournalDir, id)
	err := os.Symlink(target, link)
	if errors.Is(err, fs.ErrExist) {
		if have, rerr := os.Readlink(link); rerr == nil && have == target {
			return
		}
	}
	if err != nil {
		log.WarnContext(ctx, "journal not linked into the host's journal directory", "err", err)
	}
}

// unlinkJournal removes the host's link to the pod's journal (gc), if it
// is the pod's own.
func unlinkJournal(uuid string) error {
	id := stage1abi.MachineID(uuid)
	if !machineID.MatchString(id) {
		return nil
	}
	link := filepath.Join(hostJournalDir, id)
	have, err := os.Readlink(link)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EINVAL) {
			return nil // none, or not a link: not ours
		}
		return fmt.Errorf("read journal link: %w", err)
	}
	// The pod's own link, made when its directory was elsewhere (gc
	// moves exited pods): the UUID names one pod.
	if !strings.HasSuffix(have, string(filepath.Separator)+filepath.Join(uuid, stage1abi.JournalDir, id)) {
		return nil
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove journal link: %w", err)
	}
	return nil
}
