package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/stage1"
)

// Exit statuses of commands that act on several pods and go on after a
// failure (stop, rm), as cmd/nscn maps the error classes.
const (
	exitPodsUsage   = 2
	exitPodsRuntime = stage1abi.ExitRuntime
)

// uuidFileFlag is the --uuid-file flag of the commands that name pods:
// stop, rm, status, cat-manifest, enter and export, as in rkt.
func uuidFileFlag() cli.Flag {
	return &cli.StringFlag{Name: "uuid-file", Usage: "read the pod UUID from FILE (as written by run --uuid-file-save) instead of the arguments"}
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:         "stop",
		Usage:        "stop running pods",
		OnUsageError: onPodUsageError,
		ArgsUsage:    "UUID...",
		Description: `Asks each running pod (by UUID or unambiguous UUID prefix) to stop, through the
stop entrypoint of its stage1 (coreos.com/rkt/stage1/stop, called with [--force]
UUID). With the fly stage1 the app gets SIGTERM, or SIGKILL with --force. stop does
not wait for the pod to exit: use "nscn status --wait UUID" for that.

The UUID of each pod asked to stop is printed on stdout. A pod that is not running
is an error for that pod. Every pod is attempted; the exit status is 254 if any
failed (2 if every failure was bad usage, such as an ambiguous prefix).

--uuid-file=FILE reads the UUID from FILE instead of the arguments.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "kill the pod (SIGKILL with fly) instead of asking it to stop"},
			uuidFileFlag(),
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			refs, err := podRefs(c, "stop")
			if err != nil {
				return err
			}
			force := c.Bool("force")
			return forEachPod(g, "stop", refs, func(ref string) error {
				p, err := pod.Get(c.Context, g.Dir, ref)
				if err != nil {
					return err
				}
				if err := stopPod(c.Context, g, p, force); err != nil {
					return err
				}
				_, err = fmt.Fprintln(g.Stdout, p.UUID)
				return err
			})
		},
	}
}

// stopPod runs the stop entrypoint of a running pod's stage1.
func stopPod(ctx context.Context, g *Globals, p *pod.Pod, force bool) error {
	if p.State != pod.Running {
		return errdefs.FailedPrecondition("stop pod %s: pod is %s, not running", p.UUID, p.State)
	}
	s, err := openStore(ctx, g)
	if err != nil {
		return err
	}
	s1, err := stage1.OpenPod(ctx, s, p.Path)
	if err != nil {
		return fmt.Errorf("stop pod %s: %w", p.UUID, err)
	}
	var args []string
	if force {
		args = append(args, "--"+stage1abi.FlagStopForce)
	}
	args = append(args, p.UUID)
	g.Log.Debug("stopping pod", "pod", p.UUID, "entrypoint", s1.Stop, "args", args)
	// The entrypoint's output is a message, never command output.
	st, err := s1.Invoke(ctx, s1.Stop, args, stage1.Stdio{Out: g.Stderr, Err: g.Stderr}, stage1Env(g))
	if err != nil {
		return fmt.Errorf("stop pod %s: %w", p.UUID, err)
	}
	if st != 0 {
		return fmt.Errorf("stop pod %s: the stage1 stop entrypoint exited with status %d", p.UUID, st)
	}
	return nil
}

// podRefs returns the pods a stop or rm names: the arguments, or the UUID
// in the --uuid-file, not both.
func podRefs(c *cli.Context, cmd string) ([]string, error) {
	file := c.String("uuid-file")
	if file == "" {
		if c.NArg() == 0 {
			return nil, usageErrorf("%s: at least one pod UUID (or --uuid-file) is required", cmd)
		}
		return c.Args().Slice(), nil
	}
	if c.NArg() != 0 {
		return nil, usageErrorf("%s: give pod UUIDs or --uuid-file, not both", cmd)
	}
	id, err := readUUIDFile(cmd, file)
	if err != nil {
		return nil, err
	}
	return []string{id}, nil
}

// readUUIDFile reads the pod UUID of --uuid-file, as run --uuid-file-save
// wrote it.
func readUUIDFile(cmd, file string) (string, error) {
	b, err := os.ReadFile(file) //nolint:gosec // G304: the --uuid-file the user named
	if err != nil {
		return "", errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("%s: read --uuid-file: %w", cmd, err))
	}
	id := strings.TrimSpace(string(b))
	if id == "" || strings.ContainsAny(id, " \t\n") {
		return "", usageErrorf("%s: --uuid-file %s does not hold exactly one UUID", cmd, file)
	}
	return id, nil
}

// onePod splits the arguments of a command that names one pod: the pod
// from --uuid-file and every argument, or the first argument and the
// rest. wantRest is how many arguments must follow the pod; -1 for any.
func onePod(c *cli.Context, cmd string, wantRest int, restName string) (string, []string, error) {
	args := c.Args().Slice()
	ref := ""
	if file := c.String("uuid-file"); file != "" {
		id, err := readUUIDFile(cmd, file)
		if err != nil {
			return "", nil, err
		}
		ref = id
	} else {
		if len(args) == 0 {
			return "", nil, usageErrorf("%s: a pod UUID (or --uuid-file) is required", cmd)
		}
		ref, args = args[0], args[1:]
	}
	if wantRest >= 0 && len(args) != wantRest {
		if wantRest == 0 {
			return "", nil, usageErrorf("%s: exactly one pod (a UUID or --uuid-file) is required", cmd)
		}
		return "", nil, usageErrorf("%s: a pod (a UUID or --uuid-file) and %s are required", cmd, restName)
	}
	return ref, args, nil
}

// forEachPod runs fn for each ref, printing each failure on stderr and
// going on. It fails with ExitStatusErr if any failed: status 2 if every
// failure was a usage error, 254 otherwise.
func forEachPod(g *Globals, cmd string, refs []string, fn func(ref string) error) error {
	var first error
	status := exitPodsUsage
	for _, ref := range refs {
		err := fn(ref)
		if err == nil {
			continue
		}
		_, _ = fmt.Fprintf(g.Stderr, "nscn: %s %s: %s\n", cmd, safetext.Escape(ref), safetext.Escape(err.Error()))
		if first == nil {
			first = err
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			status = exitPodsRuntime
		}
	}
	if first != nil {
		return ExitStatusErr{Status: status, Err: first}
	}
	return nil
}
