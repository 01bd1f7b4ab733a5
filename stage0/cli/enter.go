package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/stage1"
)

// enterPIDWait bounds how long enter waits for a pod that has just started
// to record its pid.
const enterPIDWait = 10 * time.Second

// defaultEnterCommand is what enter runs when no command is given.
const defaultEnterCommand = "/bin/sh"

func enterCommand() *cli.Command {
	return &cli.Command{
		Name:         "enter",
		Usage:        "run a command in a running pod",
		OnUsageError: onPodUsageError,
		ArgsUsage:    "UUID [CMD [ARGS...]]",
		Description: `Runs CMD (default: /bin/sh) with ARGS in the running pod with the given UUID or
unambiguous UUID prefix, in the view of one of its apps: --app, which may be left
out when the pod has a single app. The terminal and the standard streams are
attached to CMD, and enter exits with CMD's status.

Flags of enter come before UUID; everything after UUID is the command, so
"nscn enter UUID ls -l /" passes -l to ls. A "--" right after UUID is dropped,
for commands that look like flags to a reader: "nscn enter UUID -- ls -l".

The pod's stage1 does the entering (its coreos.com/rkt/stage1/enter entrypoint,
called with --pid=PID --appname=APP -- CMD ARGS...). With the fly stage1, CMD runs
chrooted into the app's root filesystem with the app's environment, as root, in
the host's other namespaces. Ctrl-C reaches CMD, not nscn.

enter fails (254) when the pod is not running or its stage1 cannot enter it.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "app", Usage: "the app to enter (needed when the pod has several)"},
			uuidFileFlag(),
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			ref, cmdline, err := onePod(c, "enter", -1, "")
			if err != nil {
				return err
			}
			if len(cmdline) > 0 && cmdline[0] == "--" {
				cmdline = cmdline[1:]
			}
			if len(cmdline) == 0 {
				cmdline = []string{defaultEnterCommand}
			}
			return enterPod(c, g, ref, c.String("app"), cmdline)
		},
	}
}

// enterPod runs cmdline in app (or the pod's only app) of the running pod
// ref through the stage1's enter entrypoint, and exits with its status:
// nscn enter and nscn app exec.
func enterPod(c *cli.Context, g *Globals, ref, appName string, cmdline []string) error {
	p, err := pod.Get(c.Context, g.Dir, ref)
	if err != nil {
		return err
	}
	if p.State != pod.Running {
		return errdefs.FailedPrecondition("enter pod %s: pod is %s, not running", p.UUID, p.State)
	}
	pm, err := p.Manifest(c.Context)
	if err != nil {
		return err
	}
	app, err := pickApp(pm, p.UUID, appName)
	if err != nil {
		return err
	}
	st, err := openStore(c.Context, g)
	if err != nil {
		return err
	}
	s1, err := stage1.OpenPod(c.Context, st, p.Path)
	if err != nil {
		return fmt.Errorf("enter pod %s: %w", p.UUID, err)
	}
	pidCtx, cancel := context.WithTimeout(c.Context, enterPIDWait)
	pid, err := p.WaitPID(pidCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("enter pod %s: %w", p.UUID, err)
	}
	epArgs := append([]string{
		"--" + stage1abi.FlagEnterPID + "=" + strconv.Itoa(pid),
		"--" + stage1abi.FlagEnterAppName + "=" + app,
		"--",
	}, cmdline...)
	g.Log.Debug("entering pod", "pod", p.UUID, "app", app, "entrypoint", s1.Enter, "args", epArgs)
	// A terminal's Ctrl-C signals both nscn and CMD; the command
	// decides what it means, so nscn's own cancellation must not
	// kill it.
	status, err := s1.Invoke(context.WithoutCancel(c.Context), s1.Enter, epArgs,
		stage1.Stdio{In: g.Stdin, Out: g.Stdout, Err: g.Stderr}, stage1Env(g))
	if err != nil {
		return fmt.Errorf("enter pod %s: %w", p.UUID, err)
	}
	if status != 0 {
		return ExitStatus(status)
	}
	return nil
}

// pickApp returns the name of the app of pm a command acts on: the one
// named, or else the only one. An unknown name, or no name when there are
// several apps, is a usage error listing the apps.
func pickApp(pm *schema.PodManifest, uuid, name string) (string, error) {
	names := make([]string, len(pm.Apps))
	for i, a := range pm.Apps {
		names[i] = a.Name.String()
	}
	if name != "" {
		if slices.Contains(names, name) {
			return name, nil
		}
		return "", usageErrorf("pod %s has no app %q (its apps: %s)", uuid, name, strings.Join(names, ", "))
	}
	switch len(names) {
	case 0:
		return "", errdefs.FailedPrecondition("pod %s has no apps", uuid)
	case 1:
		return names[0], nil
	}
	return "", usageErrorf("pod %s has %d apps (%s): choose one with --app", uuid, len(names), strings.Join(names, ", "))
}

// stage1Env is the environment of a stage1 entrypoint stage0 runs as a
// child: nscn's own, plus the debug switch of the ABI.
func stage1Env(g *Globals) []string {
	env := os.Environ()
	if g.Debug {
		env = append(env, stage1abi.EnvStage1Debug+"=true")
	}
	return env
}
