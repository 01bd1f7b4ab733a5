//go:build functional && nspawn

package tests

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The pod's journal, sd_notify and socket activation in stage1-nspawn
// (Documentation/logging.md).

// sdapp is the image of tests/sdapp (scripts/build-images.sh): it
// declares supports-systemd-notify and a socket-activated port 8086.
func sdapp(t *testing.T) string { t.Helper(); return filepath.Join(imagesDir(t), "sdapp.aci") }

// journalctl runs the host's journalctl and returns its output.
func journalctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("journalctl", append([]string{"--no-pager", "--quiet"}, args...)...).Output() //nolint:gosec // G204: the host's journalctl, argv built by the test
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok { //nolint:errorlint // the type of exec's own error
			stderr = ee.Stderr
		}
		t.Fatalf("journalctl %v: %v: %s", args, err, stderr)
	}
	return string(out)
}

// machineID is the pod's machine ID: its UUID without dashes.
func machineID(uuid string) string { return strings.ReplaceAll(uuid, "-", "") }

// journalDir is the pod's journal directory, in its pod directory.
func journalDir(t *testing.T, e *env, uuid string) string {
	t.Helper()
	return filepath.Join(podDir(t, e), "journal", machineID(uuid))
}

// TestJournalAfterExit: an app's output is in the pod's journal, with its
// unit and name, read back after the pod exited with journalctl
// --directory, through the host's /var/log/journal link, and with nscn
// logs; gc removes the link.
func TestJournalAfterExit(t *testing.T) {
	e := newEnv(t)
	r := e.nspawnRun(busybox(t), "--name=greeter", "--exec=/bin/sh", "--", "-c",
		`echo "hello journal"; echo "<3>not a priority"; sleep 1; echo "oops" >&2`)
	if r.code != 0 || r.stdout != "hello journal\n<3>not a priority\n" || r.stderr != "oops\n" {
		t.Fatalf("run: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	uuid := nspawnOnlyPod(t, e)
	dir := journalDir(t, e, uuid)

	// Straight from the pod directory.
	out := journalctl(t, "--directory="+dir, "--output=verbose", "_SYSTEMD_UNIT=app-greeter.service", "_TRANSPORT=stdout")
	for _, want := range []string{
		"MESSAGE=hello journal", "MESSAGE=<3>not a priority", "MESSAGE=oops",
		"SYSLOG_IDENTIFIER=greeter", "_MACHINE_ID=" + machineID(uuid), "PRIORITY=3",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("journalctl --directory lacks %q:\n%s", want, out)
		}
	}
	// Through the host's link, where the host's journalctl looks.
	link := filepath.Join("/var/log/journal", machineID(uuid))
	if st, err := os.Stat("/var/log/journal"); err == nil && st.IsDir() {
		if got, err := os.Readlink(link); err != nil || got != dir {
			t.Fatalf("host journal link %s -> %q (%v), want %s", link, got, err, dir)
		}
		out := journalctl(t, "--directory="+link, "--output=cat", "SYSLOG_IDENTIFIER=greeter", "PRIORITY=6")
		if out != "hello journal\n<3>not a priority\n" {
			t.Fatalf("journalctl through the link printed %q", out)
		}
	} else {
		t.Logf("the host has no /var/log/journal: no link to check")
	}

	// nscn logs reads the same journal: stdout and stderr apart.
	r = e.ok("logs", uuid)
	if r.stdout != "hello journal\n<3>not a priority\n" || r.stderr != "oops\n" {
		t.Fatalf("logs printed stdout %q stderr %q", r.stdout, r.stderr)
	}
	if r := e.ok("logs", "--lines=1", uuid); r.stdout != "" || r.stderr != "oops\n" {
		t.Fatalf("logs --lines=1 printed stdout %q stderr %q", r.stdout, r.stderr)
	}

	assertPodsGone(t, e)
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("gc left the host journal link %s (%v)", link, err)
	}
}

// TestJournalNotifyApp: an app whose image declares
// supports-systemd-notify gets NOTIFY_SOCKET, and the pod is ready (its
// READY=1 reaches the manager of nscn run) only once the app said it, not
// when it started.
func TestJournalNotifyApp(t *testing.T) {
	e := newEnv(t)
	manager := "@nscn-test-notify-" + filepath.Base(t.TempDir())
	notified, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: manager, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = notified.Close() }()
	e.extraEnv = append(e.extraEnv, "NOTIFY_SOCKET="+manager)
	const delay = 4 * time.Second
	p := startPod(t, e, time.Minute, []string{"starting"}, nspawnRunArgs(t, sdapp(t), "--exec=/bin/sdapp", "--", "notify", delay.String())...)
	started := time.Now()
	e.extraEnv = e.extraEnv[:len(e.extraEnv)-1]
	if st := statusMap(t, e, p.uuid); st["ready"] != "false" {
		t.Fatalf("status while the app has not said READY=1: %v, want not ready", st)
	}
	if err := notified.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := notified.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("notification %q, %v; want READY=1", buf[:n], err)
	}
	if waited := time.Since(started); waited < delay-time.Second {
		t.Fatalf("the pod was ready %v after the app started, before the app's own READY=1 (after %v)", waited, delay)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, p.errb.String())
	}
	if out := p.out.String(); out != "starting\nready\n" {
		t.Fatalf("run's stdout %q", out)
	}
	assertPodsGone(t, e)
}

// TestJournalSocketActivated: a port the image marks socketActivated is a
// socket of the pod's systemd, passed to the app (LISTEN_FDS, LISTEN_PID
// its own pid, as go-systemd checks); another app of the pod connects to
// it on the pod's loopback (--net=none: the pod's own namespace).
func TestJournalSocketActivated(t *testing.T) {
	e := newEnv(t)
	args := nspawnRunArgs(t, sdapp(t), busybox(t), "--name=client", "--exec=/bin/sh", "--", "-c",
		"for i in $(seq 100); do echo hello | nc 127.0.0.1 8086 && exit 0; sleep 0.2; done; exit 1")
	for i, a := range args {
		if a == "--net=host" {
			args[i] = "--net=none"
		}
	}
	r := e.run(args...)
	if r.code != 0 {
		uuid := nspawnOnlyPod(t, e)
		t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s\npod's journal:\n%s", r.code, r.stdout, r.stderr,
			journalctl(t, "--directory="+journalDir(t, e, uuid), "--output=short-monotonic"))
	}
	for _, want := range []string{"socket-activated sdapp got hello\n", "listening on [::]:8086, 1 socket(s) named sd\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("run's stdout %q lacks %q", r.stdout, want)
		}
	}
	// The app's own lines are in its journal.
	uuid := nspawnOnlyPod(t, e)
	if r := e.ok("logs", "--app=sdapp", uuid); r.stdout != "listening on [::]:8086, 1 socket(s) named sd\n" {
		t.Fatalf("logs --app=sdapp printed %q, stderr %q", r.stdout, r.stderr)
	}
	assertPodsGone(t, e)
}

// TestJournalAfterStop: what an app wrote before nscn stop ended the pod
// is in its journal (nscn-exit.service syncs it before the pod powers
// off).
func TestJournalAfterStop(t *testing.T) {
	e := newEnv(t)
	p := startPod(t, e, time.Minute, []string{"before-stop"}, nspawnRunArgs(t, busybox(t), "--exec=/bin/sh", "--", "-c",
		"echo before-stop; echo err-before-stop >&2; exec sleep 300")...)
	e.ok("stop", p.uuid)
	_ = p.wait()
	r := e.ok("logs", p.uuid)
	if r.stdout != "before-stop\n" || r.stderr != "err-before-stop\n" {
		t.Fatalf("logs after stop printed stdout %q stderr %q", r.stdout, r.stderr)
	}
	assertPodsGone(t, e)
}
