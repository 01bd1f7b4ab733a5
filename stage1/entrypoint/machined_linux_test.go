package entrypoint

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/nosecone/nscn/internal/testutil"
)

// busConfig is a private bus that lets anyone own any name and call
// anything: the test's stand-in for the host's system bus.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=%SOCKET%</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// startBus runs a private dbus-daemon and points DBUS_SYSTEM_BUS_ADDRESS
// at it for the test.
func startBus(t *testing.T) string {
	t.Helper()
	daemon := testutil.RequiresCommand(t, "dbus-daemon")
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(busConfig, "%SOCKET%", sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--nosyslog") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The socket file appears at bind(2), before the daemon listens: wait
	// for a connection to be accepted, or a test's first call may be
	// refused.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dbus-daemon did not listen: %s", stderr.String())
		}
	}
	addr := "unix:path=" + sock
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	return addr
}

// fakeMachined owns machined's name and records TerminateMachine calls.
type fakeMachined struct {
	mu         sync.Mutex
	terminated []string
}

func (m *fakeMachined) TerminateMachine(name string) *dbus.Error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if name == "gone" {
		return dbus.NewError(machinedName+".NoSuchMachine", []any{"No machine 'gone' known"})
	}
	if name == "broken" {
		return dbus.NewError("org.freedesktop.DBus.Error.AccessDenied", []any{"denied"})
	}
	m.terminated = append(m.terminated, name)
	return nil
}

func startFakeMachined(t *testing.T, addr string) *fakeMachined {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	m := &fakeMachined{}
	if err := conn.Export(m, machinedPath, "org.freedesktop.machine1.Manager"); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(machinedName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", machinedName, reply, err)
	}
	return m
}

// TestMachinedOnBus asks a real dbus-daemon whether machined is there:
// no bus, a bus without it, a bus with it.
func TestMachinedOnBus(t *testing.T) {
	ctx := context.Background()
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "none"))
	if ok, err := machinedOnBus(ctx); ok || err == nil {
		t.Fatalf("no bus: %v, %v; want false and an error", ok, err)
	}
	addr := startBus(t)
	if ok, err := machinedOnBus(ctx); ok || err != nil {
		t.Fatalf("bus without machined: %v, %v; want false", ok, err)
	}
	startFakeMachined(t, addr)
	if ok, err := machinedOnBus(ctx); !ok || err != nil {
		t.Fatalf("bus with machined: %v, %v; want true", ok, err)
	}
}

func TestTerminateMachine(t *testing.T) {
	addr := startBus(t)
	m := startFakeMachined(t, addr)
	if err := terminateMachine(context.Background(), "nscn-1"); err != nil {
		t.Fatal(err)
	}
	if err := terminateMachine(context.Background(), "gone"); err != nil {
		t.Fatalf("a machine that is gone: %v, want no error", err)
	}
	if err := terminateMachine(context.Background(), "broken"); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("a refusal: %v, want it passed on", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.terminated) != 1 || m.terminated[0] != "nscn-1" {
		t.Fatalf("terminated %v, want [nscn-1]", m.terminated)
	}
}

// TestMachinedSilentBus: a bus that accepts the connection and never
// answers must not hold a pod's start or its gc past machinedTimeout.
func TestMachinedSilentBus(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "silent")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+sock)
	for name, call := range map[string]func() error{
		"machinedOnBus":    func() error { _, err := machinedOnBus(context.Background()); return err },
		"terminateMachine": func() error { return terminateMachine(context.Background(), "nscn-1") },
	} {
		start := time.Now()
		err := call()
		if d := time.Since(start); err == nil || d > machinedTimeout+time.Second {
			t.Errorf("%s on a silent bus: %v after %v, want an error within %v", name, err, d, machinedTimeout)
		}
	}
}
