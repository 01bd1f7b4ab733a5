package entrypoint

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/nosecone/nscn/internal/errdefs"
)

// The pod's systemd, as the app entrypoints speak to it: on its private
// socket (/run/systemd/private in the pod, reached from the host through
// /proc/PID/root), peer to peer, without a bus daemon, with the
// org.freedesktop.systemd1 Manager interface (org.freedesktop.systemd1(5)).
// The socket answers root alone; the entrypoints run as root on the host,
// which is root in the pod.
const (
	systemdName    = "org.freedesktop.systemd1"
	systemdPath    = dbus.ObjectPath("/org/freedesktop/systemd1")
	systemdManager = systemdName + ".Manager"
	// systemdTimeout bounds a unit's start or stop: a stop takes at most
	// the unit's TimeoutStopSec (10 s) and the post-stop steps.
	systemdTimeout = 60 * time.Second
)

// podSystemd is a connection to the pod's systemd.
type podSystemd struct {
	conn *dbus.Conn
}

// dialPodSystemd connects to the systemd of the pod whose pid 1 is pid.
func dialPodSystemd(ctx context.Context, pid int) (*podSystemd, error) {
	sock := filepath.Join("/proc", strconv.Itoa(pid), "root", "run", "systemd", "private")
	conn, err := dbus.Dial("unix:path="+sock, dbus.WithContext(ctx))
	if err != nil {
		return nil, errdefs.With(errdefs.ErrUnavailable, fmt.Errorf("connect to the pod's systemd: %w", err))
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal("0")}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("authenticate to the pod's systemd: %w", err)
	}
	return &podSystemd{conn: conn}, nil
}

// Close closes the connection.
func (s *podSystemd) Close() { _ = s.conn.Close() }

func (s *podSystemd) manager() dbus.BusObject { return s.conn.Object(systemdName, systemdPath) }

// reload makes the pod's systemd read its unit files again (daemon-reload);
// it answers once it has.
func (s *podSystemd) reload(ctx context.Context) error {
	if err := s.manager().CallWithContext(ctx, systemdManager+".Reload", 0).Err; err != nil {
		return fmt.Errorf("reload the pod's systemd: %w", err)
	}
	return nil
}

// resetFailed forgets a failed unit's state; errors are of no interest
// (a unit that is not failed, or is gone).
func (s *podSystemd) resetFailed(ctx context.Context, unit string) {
	_ = s.manager().CallWithContext(ctx, systemdManager+".ResetFailedUnit", 0, unit).Err
}

// run calls method ("StartUnit", "StopUnit") for unit in mode "replace",
// waits until the job is done and returns the unit's ActiveState then.
func (s *podSystemd) run(ctx context.Context, method, unit string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	var job dbus.ObjectPath
	if err := s.manager().CallWithContext(ctx, systemdManager+"."+method, 0, unit, "replace").Store(&job); err != nil {
		return "", fmt.Errorf("%s %s in the pod's systemd: %w", method, unit, err)
	}
	for {
		// The job object is gone once the job is done.
		var v dbus.Variant
		err := s.conn.Object(systemdName, job).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, systemdName+".Job", "State").Store(&v)
		if err != nil {
			break
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s %s in the pod's systemd: %w", method, unit, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return s.unitProperty(ctx, unit, systemdName+".Unit", "ActiveState")
}

// unitProperty reads a string property of a loaded unit.
func (s *podSystemd) unitProperty(ctx context.Context, unit, iface, prop string) (string, error) {
	v, err := s.property(ctx, unit, iface, prop)
	if err != nil {
		return "", err
	}
	str, ok := v.Value().(string)
	if !ok {
		return "", fmt.Errorf("unit %s: property %s is a %s, not a string", unit, prop, v.Signature())
	}
	return str, nil
}

// mainPID is a service's main pid, in the pod's PID namespace (0: none).
func (s *podSystemd) mainPID(ctx context.Context, unit string) (int, error) {
	v, err := s.property(ctx, unit, systemdName+".Service", "MainPID")
	if err != nil {
		return 0, err
	}
	n, ok := v.Value().(uint32)
	if !ok {
		return 0, fmt.Errorf("unit %s: MainPID is a %s, not a uint32", unit, v.Signature())
	}
	return int(n), nil
}

func (s *podSystemd) property(ctx context.Context, unit, iface, prop string) (dbus.Variant, error) {
	var path dbus.ObjectPath
	if err := s.manager().CallWithContext(ctx, systemdManager+".LoadUnit", 0, unit).Store(&path); err != nil {
		return dbus.Variant{}, fmt.Errorf("load unit %s in the pod's systemd: %w", unit, err)
	}
	var v dbus.Variant
	if err := s.conn.Object(systemdName, path).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, iface, prop).Store(&v); err != nil {
		return dbus.Variant{}, fmt.Errorf("read %s of unit %s: %w", prop, unit, err)
	}
	return v, nil
}
