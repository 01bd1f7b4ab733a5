package mdsclient

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Defaults of "nscn metadata-service", as rkt had them.
const (
	DefaultPort   = 18112
	DefaultSocket = "/run/nscn/metadata-svc.sock"
)

// EnvMetadataURL is the environment variable through which an app finds the
// metadata service (appc ace.md, "Execution Environment").
const EnvMetadataURL = "AC_METADATA_URL"

const (
	// tokenBytes is the entropy of a token from NewToken: 256 bits.
	tokenBytes = 32
	// MaxManifest bounds each manifest in a registration.
	MaxManifest = 16 << 20
)

// Registration is what the service needs to know about a pod. It is also the
// JSON body of the registration API.
type Registration struct {
	// UUID is the pod's UUID, in any form github.com/google/uuid parses.
	UUID string `json:"uuid"`
	// PodManifest is the fully reified pod manifest, served as it is given.
	PodManifest json.RawMessage `json:"podManifest"`
	// ImageManifests holds the image manifest of each app of the pod,
	// keyed by app name, served as given. Every app must have one.
	ImageManifests map[string]json.RawMessage `json:"imageManifests"`
	// IPs are the pod's addresses in its networks. A request from any
	// other address is refused. With no Token, the source address is the
	// pod's only credential, so IPs must not be empty and must not hold a
	// loopback or unspecified address, which processes outside the pod
	// share. No two registered pods may share an address.
	IPs []netip.Addr `json:"ips,omitempty"`
	// Token, if set, is the secret that stage1 puts in the pod's
	// AC_METADATA_URL (see NewToken and MetadataURL). A pod with a token is
	// answered only through it. It is never logged or served back.
	Token string `json:"token,omitempty"`
}

// NewToken returns a fresh random token for Registration.Token: 256 bits,
// base64url-encoded without padding (43 characters, safe in a URL path).
func NewToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate metadata service token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// MetadataURL is the AC_METADATA_URL of a pod that reaches the service at
// host (the host's address in the pod's network) and port, with the pod's
// token; an empty token gives the bare URL of a pod identified by address.
func MetadataURL(host netip.Addr, port int, token string) string {
	u := "http://" + netip.AddrPortFrom(host.Unmap(), uint16(port)).String() //nolint:gosec // G115: a TCP port, from a listener's address
	if token != "" {
		u += "/" + token
	}
	return u
}

// FromPodDir builds the registration of pod uuid from its pod directory dir:
// the pod manifest and each app's image manifest, as stage0 left them there
// (pkg/stage1abi names the files). The caller sets IPs and Token.
func FromPodDir(dir, podUUID string) (Registration, error) {
	r := Registration{UUID: podUUID, ImageManifests: map[string]json.RawMessage{}}
	b, err := readManifest(filepath.Join(dir, stage1abi.PodManifestFile))
	if err != nil {
		return r, fmt.Errorf("read pod %s for the metadata service: %w", podUUID, err)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(b, &pm); err != nil {
		return r, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("parse manifest of pod %s: %w", podUUID, err))
	}
	r.PodManifest = b
	for _, ra := range pm.Apps {
		name := ra.Name.String()
		im, err := readManifest(filepath.Join(dir, stage1abi.AppInfoDir(name), stage1abi.AppManifestFile))
		if err != nil {
			return r, fmt.Errorf("read app %s of pod %s for the metadata service: %w", name, podUUID, err)
		}
		r.ImageManifests[name] = im
	}
	return r, nil
}

func readManifest(path string) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // G304: a registration in the metadata service's own directory
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.With(errdefs.ErrNotFound, err)
		}
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, MaxManifest+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxManifest {
		return nil, errdefs.InvalidArgument("%s is larger than %d bytes", path, MaxManifest)
	}
	return b, nil
}
