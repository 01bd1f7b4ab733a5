package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"
)

// machinedName and machinedPath are systemd-machined's name and its
// manager object on the system bus (org.freedesktop.machine1(5)).
const (
	machinedName = "org.freedesktop.machine1"
	machinedPath = dbus.ObjectPath("/org/freedesktop/machine1")
)

// machinedTimeout bounds every exchange with the system bus: a bus that
// does not answer must not hold a pod's start or its gc.
const machinedTimeout = 2 * time.Second

// systemBus connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS, or the
// standard socket) and authenticates with the uid, as the host's services
// expect from root (no user database lookup, which godbus's default
// would make).
func systemBus(ctx context.Context) (*dbus.Conn, error) {
	return dbus.ConnectSystemBus(dbus.WithContext(ctx), dbus.WithAuth(dbus.AuthExternal(strconv.Itoa(os.Getuid()))))
}

// useMachined decides whether systemd-nspawn registers the pod with
// systemd-machined (--register=yes), which then runs it in a delegated
// scope of its own: only when the host runs systemd (hostRunsSystemd)
// and machined is on the system bus, running or activatable. A host
// with systemd but without machined (no systemd-container package), or
// without a bus, gets --register=no and the cgroups run makes itself:
// systemd-nspawn would otherwise fail to start the pod.
func useMachined(ctx context.Context, log *slog.Logger) bool {
	if !hostRunsSystemd() {
		return false
	}
	ok, err := machinedOnBus(ctx)
	if err != nil {
		log.DebugContext(ctx, "systemd-machined not reachable: the pod is not registered", "err", err)
	}
	return ok
}

// machinedOnBus reports whether systemd-machined has, or can be started
// for, its name on the system bus.
func machinedOnBus(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, machinedTimeout)
	defer cancel()
	conn, err := systemBus(ctx)
	if err != nil {
		return false, fmt.Errorf("connect to the system bus: %w", err)
	}
	defer func() { _ = conn.Close() }()
	bus := conn.BusObject()
	var owned bool
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, machinedName).Store(&owned); err != nil {
		return false, fmt.Errorf("ask the system bus for %s: %w", machinedName, err)
	}
	if owned {
		return true, nil
	}
	var names []string
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
		return false, fmt.Errorf("ask the system bus for %s: %w", machinedName, err)
	}
	return slices.Contains(names, machinedName), nil
}

// terminateMachine asks systemd-machined to end the pod's machine, what
// is left of a registered pod whose run was killed: machined stops its
// scope, killing every process in it. A machine that is gone already is
// not an error.
func terminateMachine(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, machinedTimeout)
	defer cancel()
	conn, err := systemBus(ctx)
	if err != nil {
		return fmt.Errorf("connect to the system bus: %w", err)
	}
	defer func() { _ = conn.Close() }()
	err = conn.Object(machinedName, machinedPath).CallWithContext(ctx, machinedName+".Manager.TerminateMachine", 0, name).Err
	var de dbus.Error
	if errors.As(err, &de) && de.Name == machinedName+".NoSuchMachine" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("terminate machine %s: %w", name, err)
	}
	return nil
}
