//go:build functional

package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/internal/testutil/registrytest"
)

// The one account of a registry started with auth.
const (
	regUser     = "nscn-tester"
	regPassword = "s3cret-pa55"
)

// registryOpts says how a test registry listens.
type registryOpts struct {
	tls  bool // serve https with a server certificate of a fresh test CA
	auth bool // require htpasswd basic auth (regUser, regPassword) for every repository
}

// registry is one docker-registry process on 127.0.0.1, stopped when the
// test ends.
type registry struct {
	t    *testing.T
	opts registryOpts
	r    *registrytest.Registry
	// host is 127.0.0.1:PORT, the registry part of an image reference.
	host string
	// ca is the PEM file of the CA that signed the server's certificate
	// (tls only); certDir holds it as ca.crt, the layout podman and skopeo
	// read with --cert-dir.
	ca, certDir string
}

// startRegistry starts a registry as opts says, waits until it answers
// /v2/, and stops it (and checks it is gone) when the test ends.
func startRegistry(t *testing.T, opts registryOpts) *registry {
	t.Helper()
	testutil.RequiresRoot(t)
	o := registrytest.Options{TLS: opts.tls}
	if opts.auth {
		o.User, o.Password = regUser, regPassword
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := registrytest.Start(ctx, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	reg := &registry{t: t, opts: opts, r: r, host: r.Host, ca: r.CA, certDir: r.CertDir}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("docker-registry log (%s):\n%s", r.Host, r.LogTail())
		}
	})
	return reg
}

// url is the registry's URL of path.
func (r *registry) url(path string) string { return r.r.URL(path) }

// ref is the docker:// reference nscn takes for repo (with :tag or
// @digest).
func (r *registry) ref(repoRef string) string { return "docker://" + r.host + "/" + repoRef }

// transport trusts the registry's CA (tls) and nothing else.
func (r *registry) transport() *http.Transport {
	tr, err := r.r.Transport()
	if err != nil {
		r.t.Fatal(err)
	}
	return tr
}

// runTool runs a host tool (skopeo, podman) and returns its combined
// output; err is non-nil when it exits non-zero.
func runTool(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...) //nolint:gosec // G204: the test drives fixed host tools, argv built by the test
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return string(out), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
