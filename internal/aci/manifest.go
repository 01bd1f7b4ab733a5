package aci

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
)

// MaxManifestSize bounds the manifest entry ReadManifest accepts. Real
// manifests are a few KiB; the bound keeps a hostile image from making us
// buffer an arbitrary amount of JSON.
const MaxManifestSize = 4 << 20

// Names of the two top-level entries of an image archive.
const (
	manifestName = "manifest"
	rootfsName   = "rootfs"
)

// ParseManifest decodes and validates an image manifest
// (https://github.com/appc/spec/blob/v0.8.11/spec/aci.md#image-manifest-schema).
// Besides the checks of the appc schema package (kind, version, name,
// labels, app, dependencies, both those it makes when decoding and those
// it makes when encoding), it requires every pathWhitelist entry to be an
// absolute path. Any problem is an InvalidArgument error.
func ParseManifest(b []byte) (*schema.ImageManifest, error) {
	// The appc decoder reports syntax errors with a multi-line excerpt of
	// the input; check the syntax first to give a one-line message.
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("parse image manifest: %w", err))
	}
	if err := CheckIsolatorValues(b); err != nil {
		return nil, err
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("parse image manifest: %w", err))
	}
	// The appc decoder skips some checks its encoder makes (a label with
	// an empty name, for one). Encoding once applies them all, so that
	// whatever is accepted here can be stored and parsed again.
	if _, err := json.Marshal(&m); err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("parse image manifest: %w", err))
	}
	for _, p := range m.PathWhitelist {
		if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
			return nil, errdefs.InvalidArgument("parse image manifest: pathWhitelist entry %q is not an absolute path", p)
		}
	}
	return &m, nil
}

// ReadManifest scans an uncompressed image tar for its manifest entry
// ("manifest", or "./manifest" as some tools write it) and returns it parsed
// along with its raw bytes. It stops reading at the manifest, so the caller
// cannot reuse the stream for extraction. A tar without a manifest, a
// manifest that is not a regular file or is larger than MaxManifestSize,
// and a malformed tar are InvalidArgument errors.
func ReadManifest(tarStream io.Reader) (*schema.ImageManifest, []byte, error) {
	src := &errRecorder{r: tarStream}
	tr := tar.NewReader(src)
	for {
		hdr, err := nextHeader(tr)
		if errors.Is(err, io.EOF) {
			return nil, nil, errdefs.InvalidArgument("read image manifest: no %q entry in the image", manifestName)
		}
		if err != nil {
			return nil, nil, classifyTarError("read image manifest", src, err)
		}
		if cleanArchiveName(hdr.Name) != manifestName {
			continue
		}
		// archive/tar reports old-style regular files ('\x00') as TypeReg.
		if hdr.Typeflag != tar.TypeReg {
			return nil, nil, errdefs.InvalidArgument("read image manifest: %q is not a regular file (type %q)", hdr.Name, hdr.Typeflag)
		}
		if hdr.Size > MaxManifestSize {
			return nil, nil, errdefs.With(errdefs.ErrInvalidArgument,
				fmt.Errorf("read image manifest: %d bytes, more than %d: %w", hdr.Size, MaxManifestSize, ErrTooLarge))
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, tr); err != nil { //nolint:gosec // G110: hdr.Size was checked against MaxManifestSize, and tar.Reader stops there
			return nil, nil, classifyTarError("read image manifest", src, err)
		}
		m, err := ParseManifest(buf.Bytes())
		if err != nil {
			return nil, nil, err
		}
		return m, buf.Bytes(), nil
	}
}

// classifyTarError wraps an error met while reading a tar through src.
// An error of the underlying reader keeps its own class (an I/O error stays
// unclassified, ErrTooLarge is already InvalidArgument); anything else was
// raised by archive/tar about the archive itself (a bad header, a
// truncation, a broken sparse map) and means a bad image.
func classifyTarError(step string, src *errRecorder, err error) error {
	wrapped := fmt.Errorf("%s: %w", step, err)
	if src.err != nil && errors.Is(err, src.err) {
		return wrapped
	}
	return errdefs.With(errdefs.ErrInvalidArgument, wrapped)
}

// nextHeader is tar.Reader.Next, except that ErrInsecurePath (returned with
// a usable header when GODEBUG=tarinsecurepath=0) is dropped: the callers
// judge names themselves and must see every entry.
func nextHeader(tr *tar.Reader) (*tar.Header, error) {
	hdr, err := tr.Next()
	if hdr != nil && errors.Is(err, tar.ErrInsecurePath) {
		err = nil
	}
	return hdr, err
}

// cleanArchiveName strips what tar writers commonly prefix to member names
// ("./", "/") and cleans the rest, so "./manifest" and "rootfs//bin/../sh"
// compare as "manifest" and "rootfs/sh". It does not judge "..": callers
// that extract must check for it on the raw name.
func cleanArchiveName(name string) string {
	for {
		t := strings.TrimPrefix(strings.TrimPrefix(name, "/"), "./")
		if t == name {
			break
		}
		name = t
	}
	return path.Clean(name)
}
