package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/networking/cni"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:         "list",
		Usage:        "list the pods",
		OnUsageError: onPodUsageError,
		Description: `Lists every pod in the data directory, one row per pod, sorted by UUID: its UUID
(the first 8 characters unless --full), the names of its apps and of their images
(comma-separated, in pod manifest order), its state, and when it was created and
started, and, for a running pod, the networks it joined with their addresses as rkt
printed them (default:ip4=172.16.28.7). A pod that is still being created has no apps
yet; one that never ran has no start time; both show "-".

The states are: embryo and preparing (being created by nscn), aborted prepare (the
nscn creating it died), prepared (waiting for run-prepared), running, exited,
exited garbage (marked by gc, kept for the grace period), garbage (to be removed)
and deleting.

--format=json prints an array of objects for scripts: uuid, state, apps (name,
image_name, image_id, and, when known, state and exit_code), created, started and
finished (RFC 3339, absent when unknown), pid (while running) and networks (while
running: netName, ifName, ip, mask and ip6, rkt's names). --format=json-pretty
indents it.

list only reads: it never takes a pod's lock and never disturbs a running pod.`,
		Flags: []cli.Flag{
			formatFlag,
			&cli.BoolFlag{Name: "no-legend", Usage: "omit the header line"},
			&cli.BoolFlag{Name: "full", Usage: "print full UUIDs and RFC 3339 times"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() != 0 {
				return usageErrorf("list: no arguments expected, got %q", c.Args().First())
			}
			pods, err := pod.List(c.Context, g.Dir)
			if err != nil {
				return err
			}
			detail := isJSONFormat(format)
			views, err := readPodViews(c.Context, g, pods, detail)
			if err != nil {
				return err
			}
			if detail {
				out := make([]podJSON, len(views))
				for i := range views {
					out[i] = views[i].json()
				}
				return writeJSONAs(g.Stdout, out, format)
			}
			full := c.Bool("full")
			tw := tabwriter.NewWriter(g.Stdout, 0, 8, 2, ' ', 0)
			if !c.Bool("no-legend") {
				_, _ = fmt.Fprintln(tw, "UUID\tAPP\tIMAGE NAME\tSTATE\tCREATED\tSTARTED\tNETWORKS")
			}
			for i := range views {
				v := &views[i]
				id := v.uuid
				if !full {
					id = id[:8]
				}
				names := make([]string, len(v.apps))
				images := make([]string, len(v.apps))
				for j, a := range v.apps {
					names[j] = safetext.Escape(a.name)
					images[j] = orDash(safetext.Escape(a.imageName))
					if a.imageName != "" && a.imageVersion != "" {
						images[j] += ":" + safetext.Escape(a.imageVersion)
					}
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id,
					orDash(strings.Join(names, ",")), orDash(strings.Join(images, ",")),
					v.state, whenOrDash(v.created, full), whenOrDash(v.started, full), orDash(networksString(v.networks)))
			}
			return tw.Flush()
		},
	}
}

// readPodViews reads the views of pods, several at a time: reading is
// bound by system calls, which run in parallel on several CPUs. Pods
// removed meanwhile are left out; a pod that cannot be read is listed with
// its state only. Warnings go to stderr.
func readPodViews(ctx context.Context, g *Globals, pods []*pod.Pod, detail bool) ([]podView, error) {
	type result struct {
		v        podView
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
				r.v, r.warnings, r.err = readPodView(ctx, pods[i], detail)
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
	views := make([]podView, 0, len(pods))
	for _, r := range results {
		if errors.Is(r.err, errdefs.ErrNotFound) {
			continue // removed while we looked
		}
		if r.err != nil {
			// Unreadable: show what the state says.
			r.warnings = append(r.warnings, r.err)
		}
		for _, w := range r.warnings {
			_, _ = fmt.Fprintf(g.Stderr, "nscn: list: %s\n", safetext.Escape(w.Error()))
		}
		views = append(views, r.v)
	}
	return views, nil
}

// podView is what list and status show of one pod, read from its
// directory.
type podView struct {
	uuid     string
	state    pod.State
	apps     []podAppView
	created  time.Time // zero: unknown
	started  time.Time // zero: has not started
	finished time.Time // zero: has not finished (read with detail only)
	pid      int       // 0: not running or not recorded (read with detail only)
	ready    *bool     // whether a running pod is ready; nil otherwise (read with detail only)
	// networks are the networks a running pod joined, in --net order,
	// from the records its stage1 keeps in net-info/.
	networks []podNetView
}

// podNetView is one network of a running pod: the addresses CNI gave the
// pod's interface.
type podNetView struct {
	name   string
	ifName string
	ip4    *net.IPNet // nil: none
	ip6    *net.IPNet // nil: none
}

// String is the network as rkt's status and list print it:
// NAME:ip4=ADDR, and NAME:ip6=ADDR for an IPv6 address (rkt had none).
func (n podNetView) String() string {
	var parts []string
	if n.ip4 != nil {
		parts = append(parts, n.name+":ip4="+n.ip4.IP.String())
	}
	if n.ip6 != nil {
		parts = append(parts, n.name+":ip6="+n.ip6.IP.String())
	}
	if len(parts) == 0 {
		return n.name
	}
	return strings.Join(parts, ",")
}

// networksString joins the networks of a pod as rkt did:
// "default:ip4=172.16.28.7,other:ip4=10.1.0.2".
func networksString(nets []podNetView) string {
	parts := make([]string, len(nets))
	for i, n := range nets {
		parts[i] = safetext.Escape(n.String())
	}
	return strings.Join(parts, ",")
}

// readPodNetworks reads the network records of a pod directory. Only the
// pod's own interface counts (cni.PodIPs): a CNI result also lists the
// host side of a veth pair.
func readPodNetworks(podDir string) ([]podNetView, error) {
	recs, err := cni.ReadRecords(podDir)
	if err != nil {
		return nil, err
	}
	var out []podNetView
	for _, r := range recs {
		res, err := r.ParsedResult()
		if err != nil {
			return out, fmt.Errorf("network %s: %w", r.Name, err)
		}
		n := podNetView{name: r.Name, ifName: r.IfName}
		if res == nil {
			out = append(out, n) // ADD has not succeeded (yet)
			continue
		}
		for _, a := range cni.PodIPs(res, r.IfName) {
			switch {
			case a.IP.To4() != nil && n.ip4 == nil:
				n.ip4 = &a
			case a.IP.To4() == nil && n.ip6 == nil:
				n.ip6 = &a
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// podAppView is one app of a podView.
type podAppView struct {
	name         string
	imageName    string
	imageVersion string
	imageID      string
	exitCode     int
	exited       bool // exitCode was recorded by stage1
}

// readPodView reads what a row of list needs: the pod manifest (small),
// the creation time and the start time. With detail it also reads what
// status and JSON output need: the finish time, the apps' exit statuses
// and, for a running pod, the pid. It opens the pod directory once
// (pod.Summary), starts no process and takes no lock.
//
// Missing files are not errors (a pod being created has no manifest yet;
// one that never ran has no start time). Problems with other files are
// returned as warnings, and the rest of the view is still filled in. The
// error is errdefs.ErrNotFound when the pod itself is gone.
func readPodView(ctx context.Context, p *pod.Pod, detail bool) (podView, []error, error) {
	v := podView{uuid: p.UUID, state: p.State}
	s, err := p.Summary(ctx, detail)
	if s == nil {
		return v, nil, err
	}
	var warnings []error
	if err != nil {
		warnings = append(warnings, err)
	}
	v.created, v.started, v.finished = s.Created, s.Started, s.Finished
	if s.Manifest != nil {
		v.apps = make([]podAppView, len(s.Manifest.Apps))
		for i, a := range s.Manifest.Apps {
			av := podAppView{name: a.Name.String()}
			if a.Image.Name != nil {
				av.imageName = a.Image.Name.String()
			}
			av.imageVersion, _ = a.Image.Labels.Get("version")
			if !a.Image.ID.Empty() {
				av.imageID = a.Image.ID.String()
			}
			av.exitCode, av.exited = s.ExitStatuses[av.name]
			v.apps[i] = av
		}
	}
	if v.state == pod.Running {
		nets, err := readPodNetworks(p.Path)
		if err != nil {
			warnings = append(warnings, err)
		}
		v.networks = nets
	}
	if detail && v.state == pod.Running {
		pid, err := p.PID(ctx)
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			warnings = append(warnings, err)
		}
		v.pid = pid
		writesReady, err := stage1WritesReady(p)
		if err != nil {
			warnings = append(warnings, err)
		}
		ready := podIsReady(writesReady, s.Ready, pid)
		v.ready = &ready
	}
	return v, warnings, nil
}

// podJSON is a pod in list and status JSON output.
type podJSON struct {
	UUID     string       `json:"uuid"`
	State    string       `json:"state"`
	Apps     []podAppJSON `json:"apps"`
	Created  string       `json:"created,omitempty"`
	Started  string       `json:"started,omitempty"`
	Finished string       `json:"finished,omitempty"`
	PID      int          `json:"pid,omitempty"`
	// Ready is present while the pod runs.
	Ready *bool `json:"ready,omitempty"`
	// Networks are the networks of a running pod, with rkt's field names.
	Networks []podNetJSON `json:"networks,omitempty"`
}

// podNetJSON is a network in podJSON, named as in rkt's JSON output.
type podNetJSON struct {
	NetName string `json:"netName"`
	IfName  string `json:"ifName,omitempty"`
	IP      string `json:"ip,omitempty"`
	Mask    string `json:"mask,omitempty"`
	IP6     string `json:"ip6,omitempty"`
}

// podAppJSON is an app in podJSON.
type podAppJSON struct {
	Name      string `json:"name"`
	ImageName string `json:"image_name,omitempty"`
	ImageID   string `json:"image_id,omitempty"`
	// State is "running" or "exited" when known.
	State    string `json:"state,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
}

func (v *podView) json() podJSON {
	out := podJSON{
		UUID:     v.uuid,
		State:    v.state.String(),
		Apps:     make([]podAppJSON, len(v.apps)),
		Created:  rfc3339(v.created),
		Started:  rfc3339(v.started),
		Finished: rfc3339(v.finished),
		PID:      v.pid,
		Ready:    v.ready,
	}
	for _, n := range v.networks {
		nj := podNetJSON{NetName: n.name, IfName: n.ifName}
		if n.ip4 != nil {
			nj.IP, nj.Mask = n.ip4.IP.String(), net.IP(n.ip4.Mask).String()
		}
		if n.ip6 != nil {
			nj.IP6 = n.ip6.String()
		}
		out.Networks = append(out.Networks, nj)
	}
	for i, a := range v.apps {
		aj := podAppJSON{Name: a.name, ImageName: a.imageName, ImageID: a.imageID}
		switch {
		case a.exited:
			code := a.exitCode
			aj.State, aj.ExitCode = "exited", &code
		case v.state == pod.Running:
			aj.State = "running"
		}
		out.Apps[i] = aj
	}
	return out
}

// rfc3339 formats t for JSON and status output; a zero t is "".
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.RFC3339Nano)
}

func whenOrDash(t time.Time, full bool) string {
	if t.IsZero() {
		return "-"
	}
	if full {
		return rfc3339(t)
	}
	return when(t, false)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// onPodUsageError classifies a flag that does not parse as a usage error
// (exit 2), and keeps the help text off stdout.
func onPodUsageError(_ *cli.Context, err error, _ bool) error {
	return errdefs.With(errdefs.ErrInvalidArgument, err)
}
