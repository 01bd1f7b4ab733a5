package entrypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/appentry"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/entry"
	"github.com/nosecone/nscn/internal/stage1/podmount"
	"github.com/nosecone/nscn/internal/stage1/podroot"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// RunConfig is the input of Run.
type RunConfig struct {
	Args sdpod.RunArgs
	Log  *slog.Logger
	// LockFD is the value of RKT_LOCK_FD.
	LockFD string
	// Stdin is read only by an --interactive app.
	Stdin, Stdout, Stderr *os.File
	// Timeline marks run's phases (nil: off).
	Timeline *timeline.Timeline
}

// hostRunsSystemd reports whether the host's pid 1 is systemd
// (sd_booted(3)): only then are systemd-machined and scopes available.
func hostRunsSystemd() bool {
	st, err := os.Lstat("/run/systemd/system")
	return err == nil && st.IsDir()
}

// Run implements the run entrypoint, from the pod directory: it lays out
// the pod's units and helper config in the stage1 rootfs, starts
// systemd-nspawn, relays the apps' output and returns the pod's status
// (sdpod.PodStatus), or an error for a stage1 failure.
func Run(ctx context.Context, cfg RunConfig) (_ int, err error) {
	cfg.Timeline.Mark("start")
	log := cfg.Log.With("pod", cfg.Args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return 0, fmt.Errorf("get pod directory: %w", err)
	}
	if err := entry.CheckLockFD(cfg.LockFD, podDir); err != nil {
		return 0, err
	}
	if err := checkHostOSRelease(hostOSRelease); err != nil {
		return 0, err
	}
	pm, err := appspec.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
	if err != nil {
		return 0, err
	}
	if cfg.Args.MDSToken == "" {
		if cfg.Args.MDSToken, err = sdpod.ReadMDSToken(podDir); err != nil {
			return 0, err
		}
	}
	lc := sdpod.LayoutConfig{PodDir: podDir, Manifest: pm, Args: cfg.Args}
	layout, err := sdpod.NewLayout(lc)
	if err != nil {
		return 0, err
	}
	// The network comes after the pod's validation and before anything
	// else; the layout is computed again with the files it generated and
	// the metadata service's address on it. A pod with no app yet gets its
	// namespace now and its interfaces while it boots (overlapsNetwork).
	var (
		pn  podNet
		bg  *netSetup
		hcu = make(chan bool, 1) // the host's cgroup mode, for the mutable record
	)
	if overlapsNetwork(cfg.Args, pm) {
		pend, err := prepareNetwork(ctx, log, podDir, cfg.Args, pm)
		if err != nil {
			return 0, err
		}
		pn.NetNS = pend.NetNS()
		cfg.Timeline.Mark("netns-ready")
		blc := lc
		bg = startNetwork(ctx, log, podDir, cfg.Args, pend, func(pn podNet) error {
			blc.ResolvConf, blc.Hosts = pn.ResolvConf, pn.Hosts
			blc.MetadataURL = podMetadataURL(ctx, log, cfg.Args, pn.HostAddr)
			unified, ok := <-hcu
			if !ok {
				return errors.New("run ended before the pod started")
			}
			err := saveMutable(podDir, blc, unified)
			cfg.Timeline.Mark("network-ready")
			return err
		})
	} else {
		close(hcu)
		var err error
		if pn, err = setupNetwork(ctx, log, podDir, cfg.Args, pm); err != nil {
			return 0, err
		}
		cfg.Timeline.Mark("network-ready")
	}
	started := false
	defer func() {
		if !started {
			if bg != nil {
				close(hcu)
				_ = bg.wait() // its own failure undid it
			}
			if terr := teardownNetwork(context.WithoutCancel(ctx), log, podDir); terr != nil {
				log.WarnContext(ctx, "undo network setup", "err", terr)
			}
		}
	}()
	defer func() {
		if started {
			// Not half-done when run exits, whatever supervise returned.
			_ = bg.wait()
		}
	}()
	if bg == nil {
		lc.ResolvConf, lc.Hosts = pn.ResolvConf, pn.Hosts
		lc.MetadataURL = podMetadataURL(ctx, log, cfg.Args, pn.HostAddr)
		if lc.ResolvConf != "" || lc.Hosts != "" || lc.MetadataURL != "" {
			if layout, err = sdpod.NewLayout(lc); err != nil {
				return 0, err
			}
		}
	}
	for _, w := range layout.Warnings {
		log.WarnContext(ctx, w)
	}
	// --interactive: a terminal on stdin becomes the pod's console;
	// other input reaches the app through a FIFO (io_linux.go).
	console := false
	if cfg.Args.Interactive {
		if len(layout.Pod.Apps) != 1 {
			return 0, errdefs.InvalidArgument("--%s needs a pod with exactly one app, not %d", stage1abi.FlagInteractive, len(layout.Pod.Apps))
		}
		if console = isTerminal(cfg.Stdin); !console {
			layout.Pod.Apps[0].Stdin = sdpod.AppStdinFIFO(layout.Pod.Apps[0].Spec.Name)
		}
	}
	if err := journalApps(podDir, &layout.Pod, console); err != nil {
		return 0, err
	}
	reportIsolators(ctx, log, cfg, layout.Reports)
	hc, err := detectHostCgroups()
	if err != nil {
		return 0, err
	}
	layout.Pod.CgroupUnified = hc.unified
	layout.Pod.TimelineBase = int64(cfg.Timeline.Base())
	register := useMachined(ctx, log)
	cgroupBinds, err := setupIsolation(ctx, log, cfg, podDir, &layout.Pod, register)
	if err != nil {
		return 0, err
	}
	if err := podmount.MakeEmptyVolumes(layout.EmptyVolumes); err != nil {
		return 0, err
	}
	if bg != nil {
		hcu <- hc.unified
	} else if err := saveMutable(podDir, lc, hc.unified); err != nil {
		return 0, err
	}
	layout.Pod.HostIPC = cfg.Args.IPC == stage1abi.IPCParent
	layout.Pod.HostPID = cfg.Args.HostPID
	if err := writePodFiles(podDir, layout.Pod, console); err != nil {
		return 0, err
	}
	if layout.Pod.HostIPC {
		undo, err := bindHostIPC(ctx, log, podDir)
		if err != nil {
			return 0, err
		}
		defer func() {
			if !started {
				undo()
			}
		}()
	}
	cfg.Timeline.Mark("pod-files-written")
	root := filepath.Join(podDir, stage1abi.Stage1RootfsRel)
	// systemd-nspawn and its loader run on the host: from the image, not
	// from the pod's copy of it.
	image, err := imageRoot()
	if err != nil {
		return 0, err
	}
	if layout.Pod.HostPID {
		// The apps' processes, started in run's PID namespace by the
		// spawner (hostpid_linux.go) as long as run supervises the pod.
		stop, err := startSpawner(ctx, log, spawnerConfig{
			PodDir: podDir, Pod: layout.Pod, Layout: lc, Helper: filepath.Join(image, sdpod.AppHelper),
			PodPID: func() (int, error) { return podPID(podDir) },
		})
		if err != nil {
			return 0, err
		}
		defer stop()
	}
	loader, libDir, err := findLoader(image)
	if err != nil {
		return 0, err
	}
	binds, err := appentry.CheckBinds(ctx, log, layout.Binds)
	if err != nil {
		return 0, err
	}
	binds = append(binds, cgroupBinds...)
	jb, err := setupJournal(ctx, log, podDir, cfg.Args.UUID)
	if err != nil {
		return 0, err
	}
	binds = append(binds, jb)
	// The directories that stay writable once the app helper makes the
	// pod's root read-only (sealRoot).
	for _, d := range sdpod.WritableDirs {
		if err := os.MkdirAll(inStage1(podDir, d), 0o755); err != nil {
			return 0, fmt.Errorf("create pod directory: %w", err)
		}
	}
	var cgroups podCgroups
	if !register {
		if cgroups, err = joinPodCgroups(ctx, cfg.Args.UUID, hc); err != nil {
			return 0, err
		}
		// systemd-nspawn moves itself and the pod's init below the pod's
		// cgroup as it starts (supervisor/, payload/); the cgroup that
		// holds the whole pod for its life is the one made here.
		if err := atomicfile.Write(podDir, stage1abi.CgroupFile, []byte("/"+podCgroupRel(cfg.Args.UUID)+"\n")); err != nil {
			return 0, err
		}
	}
	// --private-users: the last thing before the start, once every file
	// of the pod's root is written.
	var users *podUsers
	if r := cfg.Args.PrivateUsers; !r.IsZero() {
		hostFiles := privateUsersHostFiles(podDir, stage1abi.MachineID(cfg.Args.UUID), cgroupBinds)
		var appRoots []string
		for _, a := range layout.Pod.Apps {
			appRoots = append(appRoots, filepath.Join(podDir, stage1abi.AppRootfs(a.Spec.Name)))
		}
		if users, err = shiftPodUsers(ctx, log, root, appRoots, r, hostFiles); err != nil {
			return 0, err
		}
		users.netns = pn.NetNS
		defer users.Close()
	}
	// A mutable pod's apps come later, each with its own capabilities
	// (app add --caps-retain, a CRI container's add_capabilities or
	// privileged): the container's bounding set cannot be the union of
	// apps it does not know yet, so it is left whole, and each app's
	// bounding set is what its policy says, as for every app.
	allCaps := cfg.Args.DisableCapabilities || cfg.Args.Mutable
	argv := nspawn.Argv(nspawn.ArgvConfig{
		Loader: loader, LibDir: libDir, Nspawn: filepath.Join(image, "usr/bin/systemd-nspawn"),
		Root: root, UUID: cfg.Args.UUID, Hostname: cfg.Args.Hostname, NetMode: cfg.Args.NetMode, NetNS: pn.NetNS,
		Register: register, Debug: cfg.Args.Debug, AllCapabilities: allCaps,
		Capabilities: layout.Pod.Capabilities(), Binds: binds, Console: consoleMode(console),
		PrivateUsers: cfg.Args.PrivateUsers,
	})
	// From here the gc entrypoint tears the network down.
	started = true
	return supervise(ctx, log, cfg, podDir, layout.Pod, argv, console, cgroups, users, bg)
}

// hostOSRelease are the host files systemd-nspawn reads to give the pod
// /run/host/os-release (os-release(5)); it refuses to start without one.
var hostOSRelease = []string{"/etc/os-release", "/usr/lib/os-release"}

// checkHostOSRelease says clearly, before anything is set up, what
// systemd-nspawn would otherwise report as a failed mount.
func checkHostOSRelease(paths []string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return errdefs.FailedPrecondition("the host has no %s, which systemd-nspawn needs (os-release(5)); create one, or use the fly stage1", strings.Join(paths, " or "))
}

// findLoader returns the host paths of the image's dynamic loader and
// library directory (laid out by scripts/fetch-systemd.sh).
func findLoader(root string) (string, string, error) {
	for _, c := range []struct{ loader, libs string }{
		{"usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu"},
		{"usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", "usr/lib/aarch64-linux-gnu"},
		{"usr/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3", "usr/lib/arm-linux-gnueabihf"},
	} {
		p := filepath.Join(root, c.loader)
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
			return p, filepath.Join(root, c.libs), nil
		}
	}
	return "", "", errdefs.NotFound("the stage1 image has no dynamic loader for systemd-nspawn")
}

// consoleMode is the nspawn.ArgvConfig Console of an --interactive pod on
// a terminal.
func consoleMode(console bool) string {
	if console {
		return nspawn.ConsoleInteractive
	}
	return ""
}

// writePodFiles writes the units, the helpers' config, the I/O FIFOs
// and the state directories into the stage1 rootfs. console gives the
// (only) app the pod's console.
func writePodFiles(podDir string, pod sdpod.Pod, console bool) error {
	var uapps []units.App
	for _, a := range pod.Apps {
		ua := units.App{
			Name: a.Spec.Name, PreStart: len(a.Spec.PreStart) > 0, PostStop: len(a.Spec.PostStop) > 0,
			Stdout: sdpod.AppStdoutFIFO(a.Spec.Name), Stderr: sdpod.AppStderrFIFO(a.Spec.Name), Console: console,
			Notify: a.Notify, Sockets: a.Sockets,
		}
		if pod.CgroupUnified && a.Policy != nil {
			ua.Limits = a.Policy.Cgroup
		}
		uapps = append(uapps, ua)
	}
	// The units every pod shares are in the image (nspawn.ImageUnitDir):
	// only the pod's own are written.
	uc := nspawn.UnitConfig()
	uc.Apps, uc.Mutable = uapps, pod.Mutable
	files, err := units.Generate(uc)
	if err != nil {
		return err
	}
	unitDir := inStage1(podDir, sdpod.UnitDir)
	for _, d := range []string{
		unitDir,
		inStage1(podDir, filepath.Dir(sdpod.FirstFailureFile)), inStage1(podDir, sdpod.StatusDir),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create pod directory: %w", err)
		}
	}
	for _, f := range files {
		if err := writeNewFile(filepath.Join(unitDir, f.Name), []byte(f.Content), 0o644); err != nil {
			return fmt.Errorf("write unit: %w", err)
		}
	}
	data, err := json.MarshalIndent(pod, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pod config: %w", err)
	}
	if err := writeNewFile(inStage1(podDir, sdpod.PodConfigFile), data, 0o600); err != nil {
		return err
	}
	for _, a := range pod.Apps {
		if err := makeAppFIFOs(podDir, a); err != nil {
			return err
		}
	}
	return nil
}

// relay copies a FIFO to w until Close: the FIFO is opened for reading
// without blocking, and a writer is held open so that the reader sees no
// end of file while no app has it open.
type relay struct {
	r, w *os.File
	done chan struct{}
}

func startRelay(p string, w io.Writer) (*relay, error) {
	rfd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	wfd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Close(rfd)
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	r := &relay{r: os.NewFile(uintptr(rfd), p), w: os.NewFile(uintptr(wfd), p), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_, _ = io.Copy(w, r.r)
	}()
	return r, nil
}

// Close drops the held writer and waits until what the apps wrote is
// copied.
func (r *relay) Close() {
	_ = r.w.Close()
	<-r.done
	_ = r.r.Close()
}

// nspawnSeccompOff says whether systemd-nspawn runs the pod without its
// own seccomp filter (SYSTEMD_SECCOMP=0). A mutable pod's container gets
// none, as it keeps the whole bounding set (run): its apps come later,
// and each app helper installs the app's own filter before the app's
// exec (nscn's default filter, or what the app's isolator or a CRI
// container's profile says), as in every pod. systemd-nspawn's filter
// held nothing back from a pod with every capability but the processes
// of the stage1 itself, and compiling it with libseccomp was the longest
// step of a sandbox's start (Documentation/performance.md, "CRI sandbox
// start, second pass").
func nspawnSeccompOff(disabled, mutable bool) bool { return disabled || mutable }

// supervise starts systemd-nspawn, records its pid, relays output and
// signals, and computes the pod's status once it has ended. console hands
// run's terminal to systemd-nspawn (--interactive on a terminal).
//
// cgroups are the pod's cgroups systemd-nspawn starts in (joinPodCgroups;
// zero when machined makes them). users, when not nil, starts it
// (--private-users with idmapped mounts). network, when not nil, is the
// pod's network being set up beside its boot: the pod is ready once it is
// too, and stopped if it fails.
func supervise(ctx context.Context, log *slog.Logger, cfg RunConfig, podDir string, pod sdpod.Pod, argv []string, console bool, cgroups podCgroups, users *podUsers, network *netSetup) (int, error) {
	pio, err := startPodIO(ctx, log, cfg, podDir, pod, console)
	if err != nil {
		return 0, err
	}
	defer pio.Close()

	ready, err := listenReady(cfg.Args.UUID, os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		return 0, err
	}
	ready.tl = cfg.Timeline
	if network != nil {
		ready.gate = func() bool {
			return network.wait() == nil
		}
	}
	if pod.Mutable {
		ready.afterReady = func() { startJournald(ctx, log, podDir, cfg.LockFD) }
	}
	defer ready.Close()
	env := append(nspawn.Env(cfg.Args.Debug, nspawnSeccompOff(cfg.Args.DisableSeccomp, pod.Mutable)), ready.Env())
	cmd := &exec.Cmd{
		Path:   argv[0],
		Args:   argv,
		Env:    env,
		Dir:    podDir,
		Stdout: cfg.Stderr, // systemd's console, with --debug only
		Stderr: cfg.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			// If run dies, systemd-nspawn stops the pod as for stop.
			Pdeathsig: syscall.SIGTERM,
			// On a terminal, systemd-nspawn must stay in the foreground
			// process group to read it and set it to raw mode.
			Setpgid: !console,
		},
	}
	if console {
		cmd.Stdin, cmd.Stdout = cfg.Stdin, cfg.Stdout
	}
	if cgroupDir := cgroups.cloneDir; cgroupDir != "" {
		d, err := os.OpenFile(cgroupDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: the pod's cgroup directory, which run made
		if err != nil {
			return 0, fmt.Errorf("open pod cgroup: %w", err)
		}
		defer func() { _ = d.Close() }()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(d.Fd())
	}
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigc)

	log.DebugContext(ctx, "start systemd-nspawn", "argv", argv)
	release, err := startNspawn(cmd, users, cgroups.join())
	if err != nil {
		return 0, fmt.Errorf("start systemd-nspawn: %w", err)
	}
	defer release()
	cfg.Timeline.Mark("nspawn-started")
	if err := atomicfile.Write(podDir, stage1abi.PPIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n")); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, err
	}
	ready.watch(ctx, log, podDir, cmd.Process.Pid)
	netFailed := make(chan struct{})
	if network != nil {
		go func() {
			if err := network.wait(); err != nil {
				close(netFailed)
			}
		}()
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var waitErr error
	var resend <-chan time.Time
loop:
	for {
		select {
		case sig := <-sigc:
			log.DebugContext(ctx, "stop the pod", "signal", sig.String())
			_ = cmd.Process.Signal(unix.SIGTERM)
		case <-netFailed:
			// Its setup undid itself: the pod, never ready, goes too.
			// systemd-nspawn passes SIGTERM on to the pod's systemd as
			// SIGRTMIN+3, which the kernel drops while systemd, a PID
			// namespace's init, has no handler for it yet: early in
			// its boot. So again until the pod has ended.
			log.DebugContext(ctx, "stop the pod: its network failed")
			_ = cmd.Process.Signal(unix.SIGTERM)
			netFailed = nil
			retry := time.NewTicker(250 * time.Millisecond)
			defer retry.Stop()
			resend = retry.C
		case <-resend:
			_ = cmd.Process.Signal(unix.SIGTERM)
		case waitErr = <-waited:
			cfg.Timeline.Mark("nspawn-exited")
			break loop
		}
	}
	pio.Close()
	log.DebugContext(ctx, "systemd-nspawn exited", "err", waitErr)
	if err := network.wait(); err != nil {
		return 0, fmt.Errorf("the pod's network: %w", err)
	}

	// What the pod's helpers left for its status is read, and the
	// kill recorded, in the pod's root, which the pod could write: in
	// it, a symlink leads nowhere out (package podroot).
	root, err := podroot.Open(podDir)
	if err != nil {
		return 0, err
	}
	defer func() { _ = root.Close() }()
	in := root.StatusInput(podStatusApps(pod))
	status, ok := sdpod.PodStatus(in)
	if !ok {
		return 0, fmt.Errorf("the pod ended before its apps did (systemd-nspawn: %v); rerun with --debug to see systemd's messages", waitErr) //nolint:errorlint // waitErr may be nil; nspawn's status is shown, not a cause to classify
	}
	if in.Killed {
		if err := root.RecordKilled(append(in.Apps, startedMutableApps(root, pod)...), in.Statuses, status); err != nil {
			log.WarnContext(ctx, "record status of killed apps", "err", err)
		}
	}
	return status, nil
}
