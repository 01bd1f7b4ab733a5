// Package registrytest runs Debian's docker-registry (the CNCF distribution
// registry, /usr/bin/docker-registry) on 127.0.0.1 for the registry suite
// (tests/registry) and the bench's pull figure: plain http or TLS with a
// certificate of a CA made for the occasion, with or without htpasswd
// basic auth, storing in a directory the caller gives. It never listens
// anywhere but loopback.
//
// It does not push images (the callers do, with go-containerregistry) and
// needs no privileges: the registry runs as the caller. Start returns once
// the registry answers /v2/; Stop ends it and its process group.
package registrytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/nosecone/nscn/internal/testutil/testca"
)

// Bin is Debian's build of the registry (package docker-registry).
const Bin = "/usr/bin/docker-registry"

// Options say how the registry listens.
type Options struct {
	// TLS serves https with a server certificate for 127.0.0.1 signed by a
	// fresh CA (Registry.CA).
	TLS bool
	// User and Password, when User is set, are the one account of an
	// htpasswd file every request must authenticate as.
	User, Password string
	// Quiet turns the registry's access log and info messages off (the
	// bench); the suite keeps them for its failure messages.
	Quiet bool
	// Addr, when set, is the one address to listen on (critest's harness
	// takes 127.0.0.1:443 in a network namespace of its own) instead of a
	// free port of 127.0.0.1.
	Addr string
	// DNSNames are names the server certificate holds besides 127.0.0.1
	// and localhost (TLS only).
	DNSNames []string
	// Storage, when set, is the storage root to use instead of one under
	// dir, so that a caller can keep what it pushed between runs.
	Storage string
}

// Registry is a running registry.
type Registry struct {
	opts Options
	// Host is 127.0.0.1:PORT, the registry part of an image reference.
	Host string
	// CA is the PEM file of the CA that signed the server's certificate
	// (TLS only), and CertDir the directory that holds it as ca.crt, the
	// layout podman's and skopeo's --cert-dir read.
	CA, CertDir string
	// Storage is the registry's filesystem storage root.
	Storage string
	// Log is the file of the registry's stdout and stderr.
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a registry with its files (config, certificates, htpasswd,
// storage, log) under dir and waits until it answers. A port picked free
// may be taken again before the registry binds it, so it tries a few.
func Start(ctx context.Context, dir string, opts Options) (*Registry, error) {
	if _, err := os.Stat(Bin); err != nil {
		return nil, fmt.Errorf("%w (scripts/install-deps.sh installs docker-registry)", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &Registry{opts: opts, Storage: filepath.Join(dir, "storage"), Log: filepath.Join(dir, "registry.log")}
	if opts.Storage != "" {
		r.Storage = opts.Storage
	}
	level := "info"
	if opts.Quiet {
		level = "warn"
	}
	cfg := map[string]any{
		"version": "0.1",
		"log":     map[string]any{"level": level, "formatter": "text", "accesslog": map[string]any{"disabled": opts.Quiet}},
		"storage": map[string]any{
			"filesystem":  map[string]any{"rootdirectory": r.Storage},
			"delete":      map[string]any{"enabled": true},
			"maintenance": map[string]any{"uploadpurging": map[string]any{"enabled": false}},
		},
	}
	httpCfg := map[string]any{}
	if opts.TLS {
		r.CertDir = filepath.Join(dir, "certs")
		pki, err := testca.New("nscn registry test CA", 24*time.Hour, opts.DNSNames...)
		if err != nil {
			return nil, fmt.Errorf("test PKI: %w", err)
		}
		ca, cert, key, err := pki.Write(r.CertDir)
		if err != nil {
			return nil, fmt.Errorf("test PKI: %w", err)
		}
		r.CA = ca
		httpCfg["tls"] = map[string]any{"certificate": cert, "key": key}
	}
	if opts.User != "" {
		htpasswd := filepath.Join(dir, "htpasswd")
		hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(htpasswd, []byte(opts.User+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg["auth"] = map[string]any{"htpasswd": map[string]any{"realm": "nscn-test", "path": htpasswd}}
	}
	cfg["http"] = httpCfg
	var errs []error
	for range 5 {
		if opts.Addr != "" {
			r.Host = opts.Addr
		} else {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		}
		httpCfg["addr"] = r.Host
		// JSON is YAML: the registry reads it as its config.
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(conf, b, 0o600); err != nil {
			return nil, err
		}
		err = r.start(ctx, conf)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("start docker-registry: %w", errors.Join(errs...))
}

// start runs the registry on the config file and waits for it to answer;
// on failure the process is gone.
func (r *Registry) start(ctx context.Context, conf string) error {
	logf, err := os.OpenFile(r.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	r.cmd = exec.Command(Bin, "serve", conf) //nolint:gosec // G204: Debian's registry on our own config. Not CommandContext: the registry outlives ctx, which bounds the start only, until Stop
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	// Its own process group, and a death signal: nothing outlives the
	// caller, even a killed one.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	tr, err := r.Transport()
	if err != nil {
		r.kill()
		return err
	}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		select {
		case <-r.done:
			return fmt.Errorf("docker-registry exited: %s", r.LogTail())
		case <-ctx.Done():
			r.kill()
			return fmt.Errorf("docker-registry did not answer %s: %w: %s", r.URL("/v2/"), ctx.Err(), r.LogTail())
		case <-time.After(50 * time.Millisecond):
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL("/v2/"), nil)
		if err != nil {
			r.kill()
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		// 200, or 401 with auth: it is serving the API.
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			return nil
		}
	}
}

// Stop ends the registry: SIGTERM to its process group, SIGKILL after 10 s.
// The error says if it had to kill, or if the group is still there after.
func (r *Registry) Stop() error {
	var errs []error
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		errs = append(errs, fmt.Errorf("docker-registry %d ignored SIGTERM for 10s; killed", r.cmd.Process.Pid))
		r.kill()
	}
	if err := syscall.Kill(-r.cmd.Process.Pid, 0); err == nil {
		errs = append(errs, fmt.Errorf("docker-registry's process group %d is still alive after stop; killed", r.cmd.Process.Pid))
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
	return errors.Join(errs...)
}

// Done is closed once the registry process has exited.
func (r *Registry) Done() <-chan struct{} { return r.done }

func (r *Registry) kill() {
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

// LogTail is the end of the registry's log, for error messages.
func (r *Registry) LogTail() string {
	b, _ := os.ReadFile(r.Log)
	if len(b) > 8000 {
		return "…" + string(b[len(b)-8000:])
	}
	return string(b)
}

// URL is the registry's URL of path ("/v2/").
func (r *Registry) URL(path string) string {
	scheme := "http"
	if r.opts.TLS {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

// Transport is an HTTP transport that trusts the registry's CA (TLS) and
// nothing else, and ignores proxy settings of the environment: the
// registry is on loopback.
func (r *Registry) Transport() (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if r.opts.TLS {
		pool := x509.NewCertPool()
		b, err := os.ReadFile(r.CA)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("no certificate in %s", r.CA)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr, nil
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
