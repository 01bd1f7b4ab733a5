// Package regtrust reads the registry trust policy an operator keeps in
// the registries.d directories of nscn's configuration directories: which
// registries (or repositories under one) nscn may take images from by tag,
// without a digest and without --insecure-options=image.
//
//	<cfg>/registries.d/*.json, one entry per file:
//	{"nscnKind": "registryTrust", "nscnVersion": "v1",
//	 "repositories": ["registry.k8s.io", "quay.io/team"], "acceptTags": true}
//
// A tag names whatever the registry says today, and OCI images carry no
// signature nscn checks (Documentation/images.md), so by default a tag is
// refused. An entry says that the operator trusts what these registries
// serve over verified TLS: a tag of a repository that one of its prefixes
// names is then fetched as if --insecure-options=image were given for it
// alone. Nothing else is relaxed: TLS is still verified, plain http still
// needs --insecure-options=http, and every blob is still checked against
// its digest. This is what lets `nscn cri` pull the tags a kubelet asks
// for (Documentation/cri.md).
//
// Entries of the user's, the local and the system directory add up: a
// prefix any of them names is trusted. The package parses and matches; it
// sends nothing and imports the stdlib and errdefs only.
package regtrust

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nosecone/nscn/internal/configdir"
	"github.com/nosecone/nscn/internal/errdefs"
)

// Dir is the directory of trust files inside a configuration directory.
const Dir = "registries.d"

// Kind is the nscnKind of a trust file.
const Kind = "registryTrust"

// Entry is one trust file.
type Entry struct {
	// Repositories are the prefixes the entry trusts, normalised: a
	// registry host (with its port) alone, or a host and the leading path
	// components of repositories under it.
	Repositories []string `json:"repositories"`
	// AcceptTags says that tags of those repositories are taken without a
	// digest. It must be true: an entry that trusts nothing is a mistake
	// worth an error, not a silent no-op.
	AcceptTags bool `json:"acceptTags"`
	// File is the file the entry was read from ("" for Parse).
	File string `json:"file,omitempty"`
}

type fileFormat struct {
	NscnKind     string   `json:"nscnKind"`
	NscnVersion  string   `json:"nscnVersion"`
	Repositories []string `json:"repositories"`
	AcceptTags   *bool    `json:"acceptTags"`
}

// Parse reads one trust file. Anything but one complete v1 entry fails
// with errdefs.ErrInvalidArgument.
func Parse(data []byte) (*Entry, error) {
	var f fileFormat
	if err := configdir.Decode(data, &f, "registry trust entry"); err != nil {
		return nil, err
	}
	if f.NscnKind != Kind {
		return nil, errdefs.InvalidArgument("registry trust entry: kind %q is not %q", f.NscnKind, Kind)
	}
	if f.NscnVersion != "v1" {
		return nil, errdefs.InvalidArgument("registry trust entry: version %q is not supported (want v1)", f.NscnVersion)
	}
	if f.AcceptTags == nil || !*f.AcceptTags {
		return nil, errdefs.InvalidArgument(`registry trust entry: "acceptTags": true is what an entry says; remove the file to trust nothing`)
	}
	if len(f.Repositories) == 0 {
		return nil, errdefs.InvalidArgument("registry trust entry: no repositories")
	}
	e := &Entry{AcceptTags: true}
	for _, r := range f.Repositories {
		n, err := normalise(r)
		if err != nil {
			return nil, err
		}
		e.Repositories = append(e.Repositories, n)
	}
	return e, nil
}

// normalise checks a prefix and writes it as matching compares it: the
// host lowercase, Docker Hub under one name, no trailing slash.
func normalise(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", errdefs.InvalidArgument("registry trust entry: %q is not a registry or repository prefix (%s; write registry.example.com or registry.example.com:5000/team)", p, why)
	}
	switch {
	case p == "":
		return bad("empty")
	case strings.Contains(p, "://"):
		return bad("no scheme")
	case strings.ContainsAny(p, "@ \t\r\n\\?#*"):
		return bad("no digest, white space or pattern")
	}
	for _, r := range p {
		if r < 0x21 || r > 0x7e {
			return bad("printable ASCII only")
		}
	}
	host, path, _ := strings.Cut(strings.TrimSuffix(p, "/"), "/")
	if host == "" || strings.Contains(path, "//") || strings.HasPrefix(path, "/") {
		return bad("empty component")
	}
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		// Docker's rule: the first component is a registry only when it
		// looks like a host. "library/busybox" would silently mean
		// nothing here.
		return bad("the first component must be a registry host")
	}
	host = strings.ToLower(host)
	if host == "docker.io" {
		host = "index.docker.io"
	}
	if strings.Contains(path, ":") {
		return bad("no tag")
	}
	if path == "" {
		return host, nil
	}
	return host + "/" + path, nil
}

// Policy is the merged trust of the configuration directories.
type Policy struct {
	Entries []*Entry
}

// AcceptsTag reports whether a tag of repository (as go-containerregistry
// writes it, without the registry) in registry is trusted, and the file
// that trusts it.
func (p *Policy) AcceptsTag(registry, repository string) (bool, string) {
	if p == nil {
		return false, ""
	}
	registry = strings.ToLower(registry)
	if registry == "docker.io" {
		registry = "index.docker.io"
	}
	full := registry + "/" + repository
	for _, e := range p.Entries {
		for _, r := range e.Repositories {
			// A prefix matches whole components: quay.io/team trusts
			// quay.io/team/app, not quay.io/teammate.
			if full == r || strings.HasPrefix(full, r+"/") {
				return true, e.File
			}
		}
	}
	return false, ""
}

// LoadDirs reads registries.d of each directory ("" is skipped), the most
// important first, as auth.d is read.
func LoadDirs(dirs ...string) (*Policy, error) {
	p := &Policy{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		entries, err := loadDir(filepath.Join(dir, Dir))
		if err != nil {
			return nil, err
		}
		p.Entries = append(p.Entries, entries...)
	}
	return p, nil
}

func loadDir(dir string) ([]*Entry, error) {
	files, err := configdir.Read(dir, "registry trust")
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, f := range files {
		e, err := Parse(f.Data)
		if err != nil {
			return nil, fmt.Errorf("registry trust file %s: %w", f.Path, err)
		}
		e.File = f.Path
		out = append(out, e)
	}
	return out, nil
}
