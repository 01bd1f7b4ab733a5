package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/stage0/apps"
	"github.com/nosecone/nscn/store"
)

// ServicesBinary is the program that serves nscn's gRPC services. They live
// in a second binary because gRPC and the CRI's generated types cost every
// process that links them about a millisecond of package initialisation,
// and nscn run must not pay that (Documentation/performance.md).
const ServicesBinary = "nscn-grpc"

// FetchBinary is the program that runs what needs the fetch side: fetch,
// trust, config, app add, and run and prepare of an image the store does
// not hold (fetchside_full.go). The fetcher, the OpenPGP verifier and the
// registry client cost every process that links them about a millisecond
// of package initialisation, and nscn run of a stored image must not pay
// that (Documentation/performance.md).
const FetchBinary = "nscn-fetch"

// ServicesDir is where nscn-grpc and nscn-fetch are installed when they are
// not beside nscn: the Makefile sets it with -ldflags -X
// (Documentation/packaging.md).
var ServicesDir = "/usr/local/lib/nscn"

// helperPurpose says, in the error of a missing helper, what needs it.
var helperPurpose = map[string]string{
	ServicesBinary: "the gRPC services need",
	FetchBinary:    "fetching images, checking signatures and managing trusted keys need",
}

// serviceStub makes a service command of nscn: same name, help and flags
// as the real one, whose command line it hands, unparsed, to nscn-grpc.
func serviceStub(doc *cli.Command) *cli.Command {
	doc.SkipFlagParsing = true
	doc.Action = func(c *cli.Context) error {
		return execHelper(c.Context, ServicesBinary)
	}
	return doc
}

// execHelper replaces nscn with the helper binary name (nscn-grpc,
// nscn-fetch), same arguments and environment, so that the global flags
// are read as nscn reads them. It returns only on failure.
func execHelper(_ context.Context, name string) error {
	bin, err := helperBinary(name)
	if err != nil {
		return err
	}
	if err := unix.Exec(bin, os.Args, os.Environ()); err != nil {
		return errdefs.With(errdefs.ErrUnavailable, err)
	}
	return nil
}

// helperBinary finds the helper name beside the running nscn, else in
// ServicesDir. A helper built without its side (nscn-fetch built with the
// nscn_nofetch tag) would exec itself: that is refused.
func helperBinary(name string) (string, error) {
	var tried []string
	exe, exeErr := os.Executable()
	if exeErr == nil {
		if filepath.Base(exe) == name {
			return "", errdefs.FailedPrecondition("%s was built without what it is for (the nscn_nofetch tag is for nscn alone): rebuild it with make", exe)
		}
		tried = append(tried, filepath.Join(filepath.Dir(exe), name))
	}
	tried = append(tried, filepath.Join(ServicesDir, name))
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errdefs.Unavailable("%s %s, found neither at %s nor at %s (install the nscn package, or build it with make)", helperPurpose[name], name, tried[0], tried[len(tried)-1])
}

// replaceServices puts the real service commands in place of the stubs of
// the same name.
func replaceServices(app *cli.App, services []*cli.Command) {
	for _, svc := range services {
		for i, c := range app.Commands {
			if c.Name == svc.Name {
				svc.OnUsageError = usageError
				svc.Before = checkingFlags(svc.Before)
				app.Commands[i] = svc
			}
		}
	}
}

// Service is what a service command of nscn-grpc needs of the command
// line: the global flags, parsed.
type Service struct{ g *Globals }

// ServiceOf returns the service context of a running command.
func ServiceOf(c *cli.Context) Service { return Service{globals(c)} }

// Globals are the parsed global flags.
func (s Service) Globals() *Globals { return s.g }

// OpenStore opens the data directory's store for writing, as fetch does.
func (s Service) OpenStore(ctx context.Context) (*store.Store, error) { return openStore(ctx, s.g) }

// OpenStoreReadOnly opens the data directory's store for reading only, as
// image list does: it creates nothing.
func (s Service) OpenStoreReadOnly(ctx context.Context) *store.Store {
	return openStoreReadOnly(ctx, s.g)
}

// UsageErrorf is a usage error (exit 2).
func UsageErrorf(format string, args ...any) error { return usageErrorf(format, args...) }

// Argv is the command line that runs nscn (this program: nscn-grpc has
// every command of nscn) with the same global flags, for a service that
// starts nscn commands of its own (the CRI's sandboxes).
func (s Service) Argv() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find nscn: %w", err)
	}
	g := s.g
	argv := []string{exe, "--dir=" + g.Dir, "--local-config=" + g.LocalConfig, "--system-config=" + g.SystemConfig}
	if g.UserConfig != "" {
		argv = append(argv, "--user-config="+g.UserConfig)
	}
	var ins []string
	for _, o := range []struct {
		on   bool
		name string
	}{
		{g.Insecure.Image, "image"},
		{g.Insecure.TLS, "tls"},
		{g.Insecure.HTTP, "http"},
		{g.Insecure.Pubkey, "pubkey"},
		{g.Insecure.Capabilities, "capabilities"},
		{g.Insecure.Paths, "paths"},
		{g.Insecure.Seccomp, "seccomp"},
	} {
		if o.on {
			ins = append(ins, o.name)
		}
	}
	if len(ins) > 0 {
		argv = append(argv, "--insecure-options="+strings.Join(ins, ","))
	}
	if g.Debug {
		argv = append(argv, "--debug")
	}
	return argv, nil
}

// AppsConfig is what the apps package needs to change a mutable pod's
// apps, the entrypoints' output going to w.
func (s Service) AppsConfig(st *store.Store, w io.Writer) apps.Config {
	return apps.Config{
		DataDir: s.g.Dir, Store: st, Log: s.g.Log, Debug: s.g.Debug,
		Env: stage1Env(s.g), Stdout: w, Stderr: w,
	}
}
