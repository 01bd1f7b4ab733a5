package cli

import (
	"context"
	"fmt"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/stage0/podview"
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
			g.Timeline.Mark("pods-listed")
			detail := isJSONFormat(format)
			views, err := readPodViews(c.Context, g, pods, detail)
			if err != nil {
				return err
			}
			g.Timeline.Mark("pods-read")
			if detail {
				out := make([]podJSON, len(views))
				for i := range views {
					out[i] = toPodJSON(&views[i])
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
				id := v.UUID
				if !full {
					id = id[:8]
				}
				names := make([]string, len(v.Apps))
				images := make([]string, len(v.Apps))
				for j, a := range v.Apps {
					names[j] = safetext.Escape(a.Name)
					images[j] = orDash(safetext.Escape(a.ImageName))
					if a.ImageName != "" && a.ImageVersion != "" {
						images[j] += ":" + safetext.Escape(a.ImageVersion)
					}
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id,
					orDash(strings.Join(names, ",")), orDash(strings.Join(images, ",")),
					v.State, whenOrDash(v.Created, full), whenOrDash(v.Started, full), orDash(networksString(v.Networks)))
			}
			return tw.Flush()
		},
	}
}

// readPodViews reads the views of pods (podview.ReadAll); warnings go to
// stderr.
func readPodViews(ctx context.Context, g *Globals, pods []*pod.Pod, detail bool) ([]podview.View, error) {
	return podview.ReadAll(ctx, pods, detail, func(w error) {
		_, _ = fmt.Fprintf(g.Stderr, "nscn: list: %s\n", safetext.Escape(w.Error()))
	})
}

// networksString joins the networks of a pod as rkt did:
// "default:ip4=172.16.28.7,other:ip4=10.1.0.2".
func networksString(nets []podview.Net) string {
	parts := make([]string, len(nets))
	for i, n := range nets {
		parts[i] = safetext.Escape(n.String())
	}
	return strings.Join(parts, ",")
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

// podJSON returns v as list and status print it in JSON.
func toPodJSON(v *podview.View) podJSON {
	out := podJSON{
		UUID:     v.UUID,
		State:    v.State.String(),
		Apps:     make([]podAppJSON, len(v.Apps)),
		Created:  rfc3339(v.Created),
		Started:  rfc3339(v.Started),
		Finished: rfc3339(v.Finished),
		PID:      v.PID,
		Ready:    v.Ready,
	}
	for _, n := range v.Networks {
		nj := podNetJSON{NetName: n.Name, IfName: n.IfName}
		if n.IP4 != nil {
			nj.IP, nj.Mask = n.IP4.IP.String(), net.IP(n.IP4.Mask).String()
		}
		if n.IP6 != nil {
			nj.IP6 = n.IP6.String()
		}
		out.Networks = append(out.Networks, nj)
	}
	for i, a := range v.Apps {
		aj := podAppJSON{Name: a.Name, ImageName: a.ImageName, ImageID: a.ImageID}
		switch {
		case a.Exited:
			code := a.ExitCode
			aj.State, aj.ExitCode = "exited", &code
		case v.State == pod.Running:
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
