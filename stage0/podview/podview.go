// Package podview reads what nscn shows of a pod: its state, apps and
// their images and exit statuses, times, pid, readiness and networks, from
// the pod directory. "nscn list", "nscn status" and the API service
// ("nscn api-service") print or serve the same View.
//
// It only reads: it takes no lock (the pod's state comes from
// internal/pod's non-blocking probe), starts no process and never
// disturbs a running pod. It runs in stage0 and needs read access to the
// pod directories only (the nscn group's, Documentation/security.md).
package podview

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/networking/netrecord"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/stage1"
)

// View is one pod as read from its directory.
type View struct {
	UUID  string
	State pod.State
	Apps  []App
	// Manifest is the pod manifest; nil before stage0 wrote it (read
	// with detail only: the list's table needs Apps alone).
	Manifest *schema.PodManifest
	Created  time.Time // zero: unknown
	Started  time.Time // zero: has not started
	Finished time.Time // zero: has not finished (read with detail only)
	PID      int       // 0: not running or not recorded (read with detail only)
	// Ready is whether a running pod is ready; nil otherwise (read with
	// detail only).
	Ready *bool
	// Networks are the networks a running pod joined, in --net order,
	// from the records its stage1 keeps in net-info/.
	Networks []Net
}

// App is one app of a View.
type App struct {
	Name         string
	ImageName    string
	ImageVersion string // the image's version label
	ImageID      string
	ExitCode     int
	Exited       bool // ExitCode was recorded by stage1 (read with detail only)
}

// Net is one network of a running pod: the addresses CNI gave the pod's
// interface.
type Net struct {
	Name   string
	IfName string
	IP4    *net.IPNet // nil: none
	IP6    *net.IPNet // nil: none
}

// String is the network as rkt's status and list print it:
// NAME:ip4=ADDR, and NAME:ip6=ADDR for an IPv6 address (rkt had none).
func (n Net) String() string {
	var parts []string
	if n.IP4 != nil {
		parts = append(parts, n.Name+":ip4="+n.IP4.IP.String())
	}
	if n.IP6 != nil {
		parts = append(parts, n.Name+":ip6="+n.IP6.IP.String())
	}
	if len(parts) == 0 {
		return n.Name
	}
	return strings.Join(parts, ",")
}

// Networks reads the network records of a pod directory. Only the pod's
// own interface counts (netrecord.PodIPs): a CNI result also lists the
// host side of a veth pair. The records are read with netrecord, not the
// cni package, so that nscn links no CNI plugin machinery; the recorded
// configuration is not checked here (teardown does).
func Networks(podDir string) ([]Net, error) {
	recs, err := netrecord.Read(podDir, netrecord.Parse)
	if err != nil {
		return nil, err
	}
	var out []Net
	for _, r := range recs {
		res, err := r.ParsedResult()
		if err != nil {
			return out, fmt.Errorf("network %s: %w", r.Name, err)
		}
		n := Net{Name: r.Name, IfName: r.IfName}
		if res == nil {
			out = append(out, n) // ADD has not succeeded (yet)
			continue
		}
		for _, a := range netrecord.PodIPs(res, r.IfName) {
			switch {
			case a.IP.To4() != nil && n.IP4 == nil:
				n.IP4 = &a
			case a.IP.To4() == nil && n.IP6 == nil:
				n.IP6 = &a
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// Read reads what a row of list needs: the pod manifest (small), the
// creation time and the start time, and a running pod's networks. With
// detail it also reads what status, JSON output and the API need: the
// finish time, the apps' exit statuses and, for a running pod, the pid
// and readiness. It opens the pod directory once (pod.Summary), starts no
// process and takes no lock.
//
// Missing files are not errors (a pod being created has no manifest yet;
// one that never ran has no start time). Problems with other files are
// returned as warnings, and the rest of the view is still filled in. The
// error is errdefs.ErrNotFound when the pod itself is gone.
func Read(ctx context.Context, p *pod.Pod, detail bool) (View, []error, error) {
	v := View{UUID: p.UUID, State: p.State}
	s, err := p.Summary(ctx, detail)
	if s == nil {
		return v, nil, err
	}
	var warnings []error
	if err != nil {
		warnings = append(warnings, err)
	}
	v.Created, v.Started, v.Finished = s.Created, s.Started, s.Finished
	v.Manifest = s.Manifest
	if s.Apps != nil {
		v.Apps = make([]App, len(s.Apps))
		for i, a := range s.Apps {
			av := App{Name: a.Name, ImageName: a.ImageName, ImageVersion: a.ImageVersion, ImageID: a.ImageID}
			av.ExitCode, av.Exited = s.ExitStatuses[av.Name]
			v.Apps[i] = av
		}
	}
	if v.State == pod.Running {
		nets, err := Networks(p.Path)
		if err != nil {
			warnings = append(warnings, err)
		}
		v.Networks = nets
	}
	if detail && v.State == pod.Running {
		pid, err := p.PID(ctx)
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			warnings = append(warnings, err)
		}
		v.PID = pid
		writesReady, err := Stage1WritesReady(p)
		if err != nil {
			warnings = append(warnings, err)
		}
		ready := IsReady(writesReady, s.Ready, pid)
		v.Ready = &ready
	}
	return v, warnings, nil
}

// ReadAll reads the views of pods, several at a time: reading is bound by
// system calls, which run in parallel on several CPUs. Pods removed
// meanwhile are left out; a pod that cannot be read is listed with its
// state only. Each warning, and each pod's error, goes to warn (called
// from this goroutine, in the order of pods).
func ReadAll(ctx context.Context, pods []*pod.Pod, detail bool, warn func(error)) ([]View, error) {
	type result struct {
		v        View
		warnings []error
		err      error
	}
	results := make([]result, len(pods))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(len(pods), runtime.GOMAXPROCS(0)*2) {
		wg.Go(func() {
			for i := range next {
				r := &results[i]
				r.v, r.warnings, r.err = Read(ctx, pods[i], detail)
			}
		})
	}
	for i := range pods {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	views := make([]View, 0, len(pods))
	for _, r := range results {
		if errors.Is(r.err, errdefs.ErrNotFound) {
			continue // removed while we looked
		}
		if r.err != nil {
			// Unreadable: show what the state says.
			r.warnings = append(r.warnings, r.err)
		}
		for _, w := range r.warnings {
			warn(w)
		}
		views = append(views, r.v)
	}
	return views, nil
}

// Stage1WritesReady reports whether the stage1 of p records when the pod
// is ready (stage1abi.ReadyFile), from the interface version its manifest
// in the pod directory declares.
func Stage1WritesReady(p *pod.Pod) (bool, error) {
	eps, err := stage1.ReadPodEntrypoints(p.Path)
	if err != nil {
		return false, err
	}
	return eps.Version >= stage1abi.InterfaceVersionReady, nil
}

// IsReady is whether a running pod is ready: it recorded readyAt when
// its stage1 writes the ready file, or else its pid.
func IsReady(writesReady bool, readyAt time.Time, pid int) bool {
	if writesReady {
		return !readyAt.IsZero()
	}
	return pid > 0
}
