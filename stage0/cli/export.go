package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// exportTmpDir is where export mounts an app's overlay it finds
// unmounted, under the data directory.
const exportTmpDir = "tmp"

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:         "export",
		Usage:        "write an exited pod's app, as it left its files, to a new ACI",
		OnUsageError: onPodUsageError,
		ArgsUsage:    "UUID OUTPUT.aci",
		Description: `Writes the root filesystem of one app of an exited pod (by UUID or unambiguous UUID
prefix), with every change the app made to it, as a new ACI at OUTPUT.aci. --app
picks the app; it may be left out when the pod has a single app.

The image manifest is the one of the app's image, name and labels unchanged, with
its dependencies and pathWhitelist removed: the exported rootfs is the whole
rendered tree, so the new image stands alone. Give it a new name with actool
patch-manifest before importing it beside the original.

nscn reads the app's overlay (the image's rendered tree below, the app's changes
on top); if the overlay is no longer mounted, export mounts it read-only for the
time of the export, which needs root. Pods prepared without overlayfs have a copy
of the tree, which is read directly. Extended attributes and sockets are not
exported.

The ACI is an uncompressed tar unless --compression=gzip. It is written to a
temporary file beside OUTPUT and renamed into place, so a failed export leaves
nothing behind; an existing OUTPUT is refused unless --overwrite. While export
runs, gc leaves the pod alone.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "app", Usage: "the app to export (needed when the pod has several)"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace OUTPUT if it exists"},
			&cli.StringFlag{Name: "compression", Value: "none", Usage: "compression of the ACI: none or gzip"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 2 {
				return usageErrorf("export: a pod UUID and an OUTPUT file are required")
			}
			compression := c.String("compression")
			if compression != "none" && compression != "gzip" {
				return usageErrorf("export: unknown --compression %q (want none or gzip)", compression)
			}
			out := c.Args().Get(1)
			if !c.Bool("overwrite") {
				if _, err := os.Lstat(out); err == nil {
					return errdefs.AlreadyExists("export: %s exists (use --overwrite to replace it)", out)
				}
			}
			p, err := pod.Get(c.Context, g.Dir, c.Args().First())
			if err != nil {
				return err
			}
			l, err := holdExitedPod(c.Context, p)
			if err != nil {
				return err
			}
			defer func() { _ = l.Close() }()
			pm, err := p.Manifest(c.Context)
			if err != nil {
				return err
			}
			app, err := pickApp(pm, p.UUID, c.String("app"))
			if err != nil {
				return err
			}
			manifest, err := exportManifest(p.Path, app)
			if err != nil {
				return fmt.Errorf("export app %s of pod %s: %w", app, p.UUID, err)
			}
			rootfs, release, err := appRootfsView(c.Context, g, p, app)
			if err != nil {
				return fmt.Errorf("export app %s of pod %s: %w", app, p.UUID, err)
			}
			defer release()
			if err := writeACIFile(c.Context, out, c.Bool("overwrite"), manifest, rootfs, compression == "gzip"); err != nil {
				return fmt.Errorf("export app %s of pod %s: %w", app, p.UUID, err)
			}
			_, _ = fmt.Fprintf(g.Stderr, "exported app %s of pod %s to %s\n", app, p.UUID, out)
			return nil
		},
	}
}

// holdExitedPod takes a shared lock on the directory of an exited pod and
// returns it. gc and rm need the exclusive lock to move or remove a pod,
// so they leave it alone until the lock is closed, while list and status
// still see the pod as exited. It refreshes p.
func holdExitedPod(ctx context.Context, p *pod.Pod) (*lock.File, error) {
	const attempts = 4 // the pod may be moved (marked by gc) meanwhile
	for range attempts {
		if p.State != pod.Exited && p.State != pod.ExitedGarbage {
			return nil, errdefs.FailedPrecondition("export pod %s: pod is %s; only exited pods can be exported", p.UUID, p.State)
		}
		l, err := lock.TrySharedLock(p.Path, lock.Dir)
		if errors.Is(err, errdefs.ErrNotFound) {
			if err := p.Refresh(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("export pod %s: %w", p.UUID, err)
		}
		if err := p.Refresh(ctx); err != nil {
			_ = l.Close()
			return nil, err
		}
		held, herr := l.Stat()
		cur, cerr := os.Lstat(p.Path)
		if herr == nil && cerr == nil && os.SameFile(held, cur) {
			if p.State == pod.Exited || p.State == pod.ExitedGarbage {
				return l, nil
			}
		}
		_ = l.Close()
	}
	return nil, errdefs.Unavailable("export pod %s: it kept moving", p.UUID)
}

// exportManifest is the manifest of the exported image: the one of the
// app's image, without dependencies or path whitelist.
func exportManifest(podDir, app string) ([]byte, error) {
	f, err := os.Open(filepath.Join(podDir, stage1abi.AppInfoDir(app), stage1abi.AppManifestFile)) //nolint:gosec // G304: a file in the pod directory
	if err != nil {
		return nil, fmt.Errorf("read image manifest: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, aci.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read image manifest: %w", err)
	}
	if len(b) > aci.MaxManifestSize {
		return nil, errdefs.InvalidArgument("image manifest is larger than %d bytes", aci.MaxManifestSize)
	}
	m, err := aci.ParseManifest(b)
	if err != nil {
		return nil, err
	}
	m.Dependencies = nil
	m.PathWhitelist = nil
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode image manifest: %w", err)
	}
	return out, nil
}

// appRootfsView returns a directory that shows the app's root filesystem
// as the app left it, and a function that undoes what was done to get it:
//
//   - the app's overlay, where stage0 mounted it, if it still is;
//   - else, in a pod prepared with overlays, a read-only overlay with the
//     app's upper directory above the rendered tree, mounted for the
//     export under <data dir>/tmp;
//   - else the copy of the tree the pod was prepared with.
func appRootfsView(ctx context.Context, g *Globals, p *pod.Pod, app string) (dir string, release func(), err error) {
	noop := func() {}
	target := filepath.Join(p.Path, stage1abi.AppRootfs(app))
	mounted, err := isMountPoint(ctx, target)
	if err != nil {
		return "", nil, err
	}
	if mounted {
		return target, noop, nil
	}
	upper, _ := mountplan.AppOverlayDirs(p.Path, app)
	if fi, err := os.Lstat(upper); err == nil && fi.IsDir() {
		return mountAppView(ctx, g, p, app, upper)
	}
	fi, err := os.Lstat(target)
	if err != nil {
		return "", nil, errdefs.With(errdefs.ErrNotFound, fmt.Errorf("find the app's root filesystem: %w", err))
	}
	if !fi.IsDir() {
		return "", nil, errdefs.FailedPrecondition("the app's root filesystem %s is not a directory", target)
	}
	return target, noop, nil
}

// isMountPoint reports whether path is a mount point in nscn's mount
// table.
func isMountPoint(ctx context.Context, path string) (bool, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("resolve %s: %w", path, err)
	}
	mps, err := mountplan.MountPointsUnder(ctx, resolved)
	if err != nil {
		return false, err
	}
	return slices.Contains(mps, resolved), nil
}

// mountAppView mounts, read-only, the app's overlay upper directory above
// the rendered tree it was made from (an overlay with two lower layers
// and no upper is read-only), on a temporary directory.
func mountAppView(ctx context.Context, g *Globals, p *pod.Pod, app, upper string) (dir string, release func(), err error) {
	key, err := os.ReadFile(filepath.Join(p.Path, stage1abi.AppInfoDir(app), stage1abi.AppTreeIDFile))
	if err != nil {
		return "", nil, fmt.Errorf("read the app's tree ID: %w", err)
	}
	s, err := openStore(ctx, g)
	if err != nil {
		return "", nil, err
	}
	t, err := s.Trees.Get(ctx, strings.TrimSpace(string(key)))
	if err != nil {
		return "", nil, fmt.Errorf("find the app's rendered tree: %w", err)
	}
	for _, d := range []string{upper, t.Rootfs} {
		if strings.ContainsAny(d, ",:\\\n") {
			return "", nil, errdefs.FailedPrecondition("overlay layer %q contains a character overlayfs options cannot carry", d)
		}
	}
	tmpRoot := filepath.Join(g.Dir, exportTmpDir)
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return "", nil, fmt.Errorf("create temporary directory: %w", err)
	}
	mnt, err := os.MkdirTemp(tmpRoot, "export-")
	if err != nil {
		return "", nil, fmt.Errorf("create temporary directory: %w", err)
	}
	m := mountplan.Mount{Source: "overlay", Target: mnt, FSType: "overlay", Data: "lowerdir=" + upper + ":" + t.Rootfs}
	mounter := mountplan.NewLogging(mountplan.Kernel{}, g.Log)
	if err := mounter.Mount(ctx, m); err != nil {
		_ = os.Remove(mnt)
		return "", nil, fmt.Errorf("mount the app's overlay read-only: %w", err)
	}
	release = func() {
		ctx := context.WithoutCancel(ctx)
		if err := mounter.Unmount(ctx, mnt); err != nil {
			_, _ = fmt.Fprintf(g.Stderr, "nscn: export: %v (left mounted at %s)\n", err, mnt)
			return
		}
		_ = os.Remove(mnt)
	}
	return mnt, release, nil
}

// writeACIFile writes the ACI of manifest and the tree at rootfs to path,
// atomically.
func writeACIFile(ctx context.Context, path string, overwrite bool, manifest []byte, rootfs string, gz bool) error {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(aci.Write(ctx, pw, manifest, rootfs, aci.WriteOptions{Gzip: gz}))
	}()
	err := writeFileAtomic(path, overwrite, pr)
	// Unblock the writer if writeFileAtomic stopped reading early.
	_ = pr.CloseWithError(errors.New("export aborted")) // always nil
	<-done
	return err
}
