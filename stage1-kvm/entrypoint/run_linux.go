package entrypoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/kvm"
	"github.com/nosecone/nscn/internal/podlog"
	"github.com/nosecone/nscn/internal/stage1/appentry"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/entry"
	"github.com/nosecone/nscn/internal/stage1/podmount"
	"github.com/nosecone/nscn/internal/stage1/podroot"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-kvm/guest"
	"github.com/nosecone/nscn/stage1-kvm/hypervisor"
)

// RunConfig is the input of Run.
type RunConfig struct {
	Args sdpod.RunArgs
	Log  *slog.Logger
	// LockFD is the value of RKT_LOCK_FD.
	LockFD                string
	Stdin, Stdout, Stderr *os.File
	// Timeline marks run's phases on the host (nil: off). The guest's
	// helpers print none: CLOCK_MONOTONIC in the guest counts from its
	// own boot, not on the host's axis.
	Timeline *timeline.Timeline
}

// Run implements the run entrypoint, from the pod directory, and returns
// the pod's status (sdpod.PodStatus) or an error for a stage1 failure.
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
	if cfg.Args.NetMode == sdpod.NetHost {
		return 0, errdefs.Newf(errdefs.ErrNotImplemented,
			"stage1-kvm runs the pod in a virtual machine with a kernel of its own, which cannot share the host's network: use --net=default, a named network or --net=none")
	}
	if !cfg.Args.PrivateUsers.IsZero() {
		return 0, errdefs.Newf(errdefs.ErrNotImplemented, "stage1-kvm does not shift the pod's user IDs (--private-users): the pod's root is the guest kernel's, not the host's")
	}
	if cfg.Args.IPC == stage1abi.IPCParent {
		return 0, errdefs.Newf(errdefs.ErrNotImplemented, "stage1-kvm cannot share the host's IPC namespace (--ipc=parent)")
	}
	img, err := loadImage()
	if err != nil {
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
	var pn podNet
	started := false
	defer func() {
		if !started {
			if terr := teardownNetwork(context.WithoutCancel(ctx), log, podDir); terr != nil {
				log.WarnContext(ctx, "undo network setup", "err", terr)
			}
		}
	}()
	if pn, err = setupNetwork(ctx, log, podDir, cfg.Args, pm); err != nil {
		return 0, err
	}
	cfg.Timeline.Mark("network-ready")
	lc.ResolvConf, lc.Hosts = pn.ResolvConf, pn.Hosts
	// The metadata service, for a pod stage0 registered: the apps ask
	// the guest's agent (guest.MetadataProxy), which answers from the
	// host's service at the host's address on the pod's first network,
	// reached through the guest's NIC. A pod without a network cannot
	// reach the host's service.
	if cfg.Args.MDSToken != "" {
		if pn.HostAddr.IsValid() {
			if err := writeMetadataConfig(podDir, sdpod.MetadataURL(cfg.Args, pn.HostAddr)); err != nil {
				return 0, err
			}
			lc.MetadataURL = guest.MetadataURL
		} else {
			log.WarnContext(ctx, "the pod is registered with the metadata service but has no network to reach it: AC_METADATA_URL is not set", "net", cfg.Args.Net)
		}
	}
	if lc.ResolvConf != "" || lc.Hosts != "" || lc.MetadataURL != "" {
		if layout, err = sdpod.NewLayout(lc); err != nil {
			return 0, err
		}
	}
	for _, w := range layout.Warnings {
		log.WarnContext(ctx, w)
	}
	// --interactive: a terminal on stdin becomes the guest's console,
	// where the app's unit takes it; other input reaches the app on a
	// virtio-serial port that qemu reads from run's stdin, whose end the
	// app reads as end of file.
	console := false
	if cfg.Args.Interactive {
		if len(layout.Pod.Apps) != 1 {
			return 0, errdefs.InvalidArgument("--%s needs a pod with exactly one app, not %d", stage1abi.FlagInteractive, len(layout.Pod.Apps))
		}
		if console = isTerminal(cfg.Stdin); !console {
			a := &layout.Pod.Apps[0]
			a.Stdin = guest.PortDir + "/" + guest.AppPort(a.Spec.Name, stdinStream)
		}
	}
	// The guest has cgroup v2 only: the pod's systemd sets each app's
	// limits on its unit.
	layout.Pod.CgroupUnified = true
	layout.Pod.EndedFile = GuestEndedFile
	var limits []hypervisor.AppLimits
	for _, a := range layout.Pod.Apps {
		var l hypervisor.AppLimits
		if a.Policy != nil {
			c := a.Policy.Cgroup
			l.MemoryBytes = c.MemoryMax
			if c.CPUQuota > 0 {
				period := c.CPUPeriod
				if period == 0 {
					period = 100000
				}
				l.CPUMilli = c.CPUQuota * 1000 / period
			}
		}
		limits = append(limits, l)
	}
	memMiB, cpus := hypervisor.Size(limits, runtime.NumCPU())
	if err := podmount.MakeEmptyVolumes(layout.EmptyVolumes); err != nil {
		return 0, err
	}
	if err := writePodFiles(podDir, layout.Pod, console, lc.MetadataURL != ""); err != nil {
		return 0, err
	}
	cfg.Timeline.Mark("pod-files-written")
	binds, err := appentry.CheckBinds(ctx, log, layout.Binds)
	if err != nil {
		return 0, err
	}
	for _, d := range sdpod.WritableDirs {
		if err := os.MkdirAll(inStage1(podDir, d), 0o755); err != nil {
			return 0, fmt.Errorf("create pod directory: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(podDir, StateDir), 0o700); err != nil {
		return 0, fmt.Errorf("create %s: %w", StateDir, err)
	}
	// enter computes each app's policy again from the pod manifest and
	// this record, both on the host, out of the guest's reach.
	iso, err := json.Marshal(sdpod.Isolation{Options: sdpod.IsolateOptions(cfg.Args.RunArgs)})
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", IsolationFile, err)
	}
	if err := atomicfile.Write(filepath.Join(podDir, StateDir), filepath.Base(IsolationFile), iso); err != nil {
		return 0, err
	}
	if err := saveMutable(podDir, lc); err != nil {
		return 0, err
	}
	accel := accelerator(ctx, img)
	_, _ = fmt.Fprintf(cfg.Stderr, "stage1-kvm: accelerator=%s (%s)\n", accel.Accel, accel.Reason)
	log.DebugContext(ctx, "guest size", "memoryMiB", memMiB, "cpus", cpus)

	vm := vmConfig{
		img: img, accel: accel.Accel, memMiB: memMiB, cpus: cpus, binds: binds,
		console: console, debug: cfg.Args.Debug, taps: pn.Taps, nics: pn.NICs,
		hostname: hostname(cfg.Args),
	}
	started = true
	return supervise(ctx, log, cfg, podDir, layout.Pod, vm)
}

// writeMetadataConfig gives the guest's metadata server the pod's URL at
// the host's service (guest.MetadataConfigFile, mode 0600: the token).
func writeMetadataConfig(podDir, upstream string) error {
	data, err := json.Marshal(guest.MetadataConfig{Upstream: upstream})
	if err != nil {
		return fmt.Errorf("encode %s: %w", guest.MetadataConfigFile, err)
	}
	p := inStage1(podDir, guest.MetadataConfigFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create pod directory: %w", err)
	}
	return writeNewFile(p, data, 0o600)
}

// hostname is the pod's hostname: --hostname, or nscn-UUID as on nspawn.
// stage0 checked that --hostname is a valid host name.
func hostname(a sdpod.RunArgs) string {
	if a.Hostname != "" {
		return a.Hostname
	}
	return "nscn-" + a.UUID
}

// writePodFiles writes the units, the app helper's config and the state
// directories into the stage1 rootfs. The apps' stdout and stderr are
// virtio-serial ports to the host.
func writePodFiles(podDir string, pod sdpod.Pod, console, metadata bool) error {
	files, err := podUnits(pod, console, metadata)
	if err != nil {
		return err
	}
	unitDir := inStage1(podDir, sdpod.UnitDir)
	for _, d := range []string{
		unitDir, filepath.Join(unitDir, "default.target.d"),
		inStage1(podDir, filepath.Dir(sdpod.FirstFailureFile)), inStage1(podDir, sdpod.StatusDir),
		inStage1(podDir, filepath.Dir(GuestReadyFile)),
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
	return nil
}

// vmConfig is what supervise starts.
type vmConfig struct {
	img      image
	accel    kvm.Accel
	memMiB   int64
	cpus     int
	binds    []sdpod.Bind
	console  bool
	taps     []*os.File
	nics     []guest.NIC
	debug    bool
	hostname string
}

// supervise starts virtiofsd and qemu, records qemu's pid, relays the
// apps' output and run's signals, and computes the pod's status once the
// guest has powered off.
func supervise(ctx context.Context, log *slog.Logger, cfg RunConfig, podDir string, pod sdpod.Pod, vm vmConfig) (int, error) {
	vfs, err := startVirtiofsd(ctx, log, podDir, vm)
	if err != nil {
		return 0, err
	}
	cfg.Timeline.Mark("virtiofsd-started")
	defer vfs.stop()

	if err := os.Mkdir(filepath.Join(podDir, stage1abi.LogsDir), 0o750); err != nil {
		return 0, fmt.Errorf("create log directory: %w", err)
	}
	var (
		ports     []hypervisor.Port
		extra     []*os.File
		relays    []chan struct{}
		slots     []*slotWriter
		logs      []*os.File
		feedStdin bool
	)
	defer func() {
		for _, f := range logs {
			_ = f.Close()
		}
	}()
	closeExtra := func() {
		for _, f := range extra {
			_ = f.Close()
		}
		extra = nil
	}
	defer closeExtra()
	for _, a := range pod.Apps {
		name := a.Spec.Name
		lf, err := os.OpenFile(filepath.Join(podDir, stage1abi.AppLogFile(name)), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
		if err != nil {
			return 0, fmt.Errorf("create log of app %s: %w", name, err)
		}
		logs = append(logs, lf)
		if vm.console {
			continue
		}
		if a.Stdin != "" {
			ports = append(ports, hypervisor.Port{Name: guest.AppPort(name, stdinStream), Socket: StdinSocket})
			feedStdin = true
		}
		file := podlog.NewFile(lf, nil)
		for _, s := range []struct {
			stream string
			term   io.Writer
		}{{stage1abi.LogStreamStdout, cfg.Stdout}, {stage1abi.LogStreamStderr, cfg.Stderr}} {
			r, w, err := os.Pipe()
			if err != nil {
				return 0, err
			}
			ports = append(ports, hypervisor.Port{Name: guest.AppPort(name, s.stream), FD: 3 + len(extra)})
			extra = append(extra, w)
			done := make(chan struct{})
			relays = append(relays, done)
			go func(r *os.File, out io.Writer) {
				defer close(done)
				defer func() { _ = r.Close() }()
				_, _ = io.Copy(out, r)
			}(r, &teeWriter{ctx: ctx, log: log.With("app", name), term: s.term, rec: file.Stream(s.stream)})
		}
	}
	if pod.Mutable && !vm.console {
		// The output slots of the apps app/add brings (SlotFile).
		for n := range MutableSlots {
			for _, stream := range []string{stage1abi.LogStreamStdout, stage1abi.LogStreamStderr} {
				r, w, err := os.Pipe()
				if err != nil {
					return 0, err
				}
				ports = append(ports, hypervisor.Port{Name: guest.SlotPort(n, stream), FD: 3 + len(extra)})
				extra = append(extra, w)
				done := make(chan struct{})
				relays = append(relays, done)
				sw := &slotWriter{ctx: ctx, log: log, podDir: podDir, slot: n, stream: stream}
				slots = append(slots, sw)
				go func() {
					defer close(done)
					defer func() { _ = r.Close() }()
					defer sw.close()
					_, _ = io.Copy(sw, r)
				}()
			}
		}
	}
	var nics []hypervisor.NIC
	for i, t := range vm.taps {
		nics = append(nics, hypervisor.NIC{FD: 3 + len(extra), MAC: vm.nics[i].MAC})
		extra = append(extra, t)
	}
	consoleOut := ConsoleLog
	if vm.console {
		consoleOut = "stdio"
	}
	argv := hypervisor.Argv(hypervisor.Config{
		QEMU: vm.img.QEMU, Kernel: vm.img.Kernel, Initrd: vm.img.Initrd, Accel: vm.accel,
		MemoryMiB: vm.memMiB, CPUs: vm.cpus, RootSocket: RootSocket, ControlSocket: ControlSocket, EnterSocket: EnterSocket,
		Console: consoleOut, Ports: ports, NICs: nics,
		Cmdline: []string{"systemd.hostname=" + vm.hostname},
	})
	// A host whose KVM runs kvm.Probe's test guest may still fail the
	// real one: qemu then prints "KVM internal error" and pauses the
	// guest for ever. run ends it instead of hanging.
	kvmFailed := make(chan struct{})
	cmd := &exec.Cmd{
		Path: argv[0], Args: argv, Dir: podDir,
		Stderr: newQemuStderr(cfg.Stderr, kvmFailed), ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			// The guest cannot outlive run: it is the pod.
			Pdeathsig: syscall.SIGKILL,
			Setpgid:   !vm.console,
		},
	}
	if vm.console {
		cmd.Stdin, cmd.Stdout = cfg.Stdin, cfg.Stdout
	}
	if cfg.Args.Debug && !vm.console {
		cmd.Stdout = cfg.Stderr
	}
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigc)
	log.DebugContext(ctx, "start qemu", "argv", argv)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start qemu: %w", err)
	}
	cfg.Timeline.Mark("qemu-started")
	closeExtra()
	if feedStdin {
		// qemu waits for this connection before it starts the guest.
		go func() {
			if err := copyStdin(ctx, podDir, cfg.Stdin); err != nil {
				log.WarnContext(ctx, "copy stdin to the app; killing the guest", "err", err)
				_ = cmd.Process.Kill()
			}
		}()
	}
	pid := strconv.Itoa(cmd.Process.Pid) + "\n"
	for _, f := range []string{QemuPIDFile, stage1abi.PIDFile} {
		if err := atomicfile.Write(filepath.Join(podDir, filepath.Dir(f)), filepath.Base(f), []byte(pid)); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, err
		}
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	readyTick := time.NewTicker(50 * time.Millisecond)
	defer readyTick.Stop()
	ready, ended := false, false
	// markReady records the pod's readiness (stage1abi.ReadyFile), once.
	markReady := func() {
		ready = true
		cfg.Timeline.Mark("pod-ready")
		if err := atomicfile.Write(podDir, stage1abi.ReadyFile, []byte("\n")); err != nil {
			log.WarnContext(ctx, "record readiness", "err", err)
		}
	}
	var waitErr, guestErr error
loop:
	for {
		select {
		case <-kvmFailed:
			kvmFailed = nil
			guestErr = errdefs.Newf(errdefs.ErrUnavailable,
				"the guest stopped on a KVM internal error: this host's KVM runs a test guest but not the pod's kernel; NSCN_VM_ACCEL=tcg makes stage1-kvm emulate instead")
			log.ErrorContext(ctx, "kill the guest", "err", guestErr)
			_ = cmd.Process.Kill()
		case sig := <-sigc:
			log.DebugContext(ctx, "stop the pod", "signal", sig.String())
			// Beside the loop: the request may wait for the agent.
			go func() {
				if err := sendHalt(podDir, func() bool { return cmd.Process.Signal(unix.Signal(0)) == nil }); err != nil {
					log.WarnContext(ctx, "ask the guest to halt; killing it", "err", err)
					_ = cmd.Process.Kill()
				}
			}()
		case <-readyTick.C:
			for _, sw := range slots {
				sw.tick()
			}
			if !ended {
				if _, err := os.Lstat(inStage1(podDir, GuestEndedFile)); err == nil {
					ended = true
					cfg.Timeline.Mark("pod-ended")
					// An app that exits at once ends the pod before the
					// agent is up, so before GuestReadyFile: the pod was
					// ready all the same if every app started.
					if !ready && readyOnEnd(podDir) {
						markReady()
					}
					log.DebugContext(ctx, "every app has ended: end the guest", "ready", ready)
					_ = cmd.Process.Kill()
				}
			}
			if !ready {
				if _, err := os.Lstat(inStage1(podDir, GuestReadyFile)); err == nil {
					markReady()
				}
			}
		case waitErr = <-waited:
			cfg.Timeline.Mark("qemu-exited")
			break loop
		}
	}
	for _, d := range relays {
		<-d
	}
	log.DebugContext(ctx, "qemu exited", "err", waitErr)
	vfs.stop()

	// A mutable pod ends when it is stopped, whatever its apps did: none
	// makes its status.
	statusApps := pod.Names()
	if pod.Mutable {
		statusApps = nil
	}
	// What the guest's helpers left for the pod's status is read, and
	// the kill recorded, in the stage1 rootfs, which the guest's root
	// can write: in it, a symlink leads nowhere out (package podroot).
	root, err := podroot.Open(podDir)
	if err != nil {
		return 0, err
	}
	defer func() { _ = root.Close() }()
	in := root.StatusInput(statusApps)
	status, ok := sdpod.PodStatus(in)
	if guestErr != nil && !ok {
		return 0, guestErr
	}
	if !ok {
		// A virtiofsd that failed before it took qemu's connection ends
		// qemu's start ("vhost_backend_init failed"): its log says why.
		return 0, fmt.Errorf("the pod ended before its apps did (qemu: %v); the guest's console is in %s, virtiofsd's log in %s", waitErr, filepath.Join(podDir, ConsoleLog), filepath.Join(podDir, StateDir, "virtiofsd.log")) //nolint:errorlint // waitErr may be nil; shown, not classified
	}
	if in.Killed && pod.Mutable {
		// The added apps that were running get the kill as their status,
		// as run-time apps do.
		in.Apps = root.StartedApps()
	}
	if in.Killed {
		if err := root.RecordKilled(in.Apps, in.Statuses, status); err != nil {
			log.WarnContext(ctx, "record status of killed apps", "err", err)
		}
	}
	return status, nil
}

// qemuStderr passes qemu's stderr on, but for its notice that it waits
// for the stdin port's connection, and closes failed when qemu reports a
// KVM internal error (kvm.Watch).
type qemuStderr struct {
	w io.Writer // kvm.Watch's, over the user's stderr
}

func newQemuStderr(w io.Writer, failed chan struct{}) *qemuStderr {
	return &qemuStderr{w: kvm.Watch(w, kvm.InternalError, func() { close(failed) })}
}

func (q *qemuStderr) Write(p []byte) (int, error) {
	// The notice of a socket with wait=on (the stdin port's) is no news
	// to the user.
	if bytes.Contains(p, []byte(qemuWaitNotice)) {
		var keep [][]byte
		for _, l := range bytes.SplitAfter(p, []byte("\n")) {
			if !bytes.Contains(l, []byte(qemuWaitNotice)) {
				keep = append(keep, l)
			}
		}
		if _, err := q.w.Write(bytes.Join(keep, nil)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return q.w.Write(p)
}

// qemuWaitNotice is what qemu says while it waits for a connection to a
// socket chardev with wait=on.
const qemuWaitNotice = "QEMU waiting for connection on: "

// copyStdin connects to qemu's StdinSocket (retrying while qemu makes
// it, for at most 30 s), copies in to it and ends it, which the app
// reads as end of file.
func copyStdin(ctx context.Context, podDir string, in io.Reader) error {
	var (
		conn net.Conn
		err  error
	)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if conn, err = dialState(podDir, StdinSocket); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("connect to qemu's stdin socket: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer func() { _ = conn.Close() }()
	if _, err := io.Copy(conn, in); err != nil && !errors.Is(err, syscall.EPIPE) {
		return err
	}
	// Only the write side: qemu takes a hang-up (both sides closed) for
	// the end of the connection at once, dropping what the guest has not
	// read yet, but reads the end of the data only after the data, as
	// the guest takes it. Its close of the connection ends the read.
	if uc, ok := conn.(*net.UnixConn); ok {
		if err := uc.CloseWrite(); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, conn)
	}
	return nil
}

// stdinStream names an app's stdin port (guest.AppPort).
const stdinStream = "stdin"

// isTerminal says whether f is a terminal.
func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// teeWriter writes an app's output to run's terminal and to its log; a
// failure of one does not stop the other.
type teeWriter struct {
	ctx                 context.Context
	log                 *slog.Logger
	term, rec           io.Writer
	termFailed, recFail bool
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if !t.termFailed {
		if _, err := t.term.Write(p); err != nil {
			t.termFailed = true
			t.log.DebugContext(t.ctx, "app output no longer reaches run's terminal", "err", err)
		}
	}
	if !t.recFail {
		if _, err := t.rec.Write(p); err != nil {
			t.recFail = true
			t.log.WarnContext(t.ctx, "app output is no longer recorded in its log", "err", err)
		}
	}
	return len(p), nil
}
