package sdpod

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// maxMDSToken bounds the --mds-token value, which ends up in every app's
// environment.
const maxMDSToken = 128

// checkMDSToken refuses a --mds-token that could not be a path segment of
// AC_METADATA_URL as is: stage0 makes base64url tokens (mdsclient.NewToken).
func checkMDSToken(tok string) error {
	if len(tok) > maxMDSToken {
		return errdefs.InvalidArgument("flag --%s: longer than %d characters", stage1abi.FlagMDSToken, maxMDSToken)
	}
	for _, c := range tok {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return errdefs.InvalidArgument("flag --%s: %s is not allowed (only A-Z, a-z, 0-9, '-' and '_')", stage1abi.FlagMDSToken, strconv.QuoteRune(c))
		}
	}
	return nil
}

// MetadataHost returns the address at which the pod reaches the metadata
// service on the host, for the pod's network mode, and false when it
// cannot reach the host at all (NetNone: the pod has only its own
// loopback). With NetHost the pod shares the host's loopback.
//
// A pod on a CNI network reaches the host at the host side of its first
// network (the gateway, from the CNI result): run passes that address to
// MetadataURL instead of calling MetadataHost.
func MetadataHost(netMode string) (netip.Addr, bool) {
	if netMode == NetHost {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), true
	}
	return netip.Addr{}, false
}

// MetadataURL returns the AC_METADATA_URL of the apps of a pod that
// reaches the host at hostAddr (the host's address as the pod sees it):
// http://HOST:PORT/TOKEN, the port from --mds-port or, from a stage0 that
// did not pass one, stage1abi.DefaultMDSPort. The token in the path is the
// pod's identity (Documentation/metadata-service.md). It returns "" when
// stage0 registered no pod (no --mds-token) or hostAddr is not valid.
func MetadataURL(a RunArgs, hostAddr netip.Addr) string {
	if a.MDSToken == "" || !hostAddr.IsValid() {
		return ""
	}
	port := a.MDSPort
	if port == 0 {
		port = stage1abi.DefaultMDSPort
	}
	// The form of mdsclient.MetadataURL (a test holds them equal), written out
	// so that the stage1 binaries do not link the metadata service's
	// HTTP server.
	return "http://" + netip.AddrPortFrom(hostAddr.Unmap(), uint16(port)).String() + "/" + a.MDSToken
}

// ReadMDSToken reads the metadata service token stage0 left in the pod
// directory (stage1abi.MDSTokenFile, interface version 9); "" when it
// left none.
func ReadMDSToken(podDir string) (string, error) {
	f, err := os.Open(filepath.Join(podDir, stage1abi.MDSTokenFile)) //nolint:gosec // G304: a file of the pod directory (stage1 ABI)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the metadata token: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxMDSToken+2))
	if err != nil {
		return "", fmt.Errorf("read the metadata token: %w", err)
	}
	tok := strings.TrimSuffix(string(b), "\n")
	if tok == "" {
		return "", errdefs.InvalidArgument("%s is empty", stage1abi.MDSTokenFile)
	}
	if err := checkMDSToken(tok); err != nil {
		return "", fmt.Errorf("%s: %w", stage1abi.MDSTokenFile, err)
	}
	return tok, nil
}
