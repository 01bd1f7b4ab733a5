package sdpod

import (
	"encoding/json"
	"fmt"
	"path"

	"github.com/nosecone/nscn/internal/errdefs"
)

// AppCreds is the record of an app's credentials in CredsDir: the uid,
// gid and supplementary groups the app helper resolved in the app's root
// when it started the app.
type AppCreds struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// CredsFile is the record of app's credentials, in the pod.
func CredsFile(app string) string { return path.Join(CredsDir, app) }

// maxCredsRecord bounds a record: a few numbers, and at most the groups
// an app can have (NGROUPS_MAX is 65536).
const maxCredsRecord = 1 << 20

// ParseAppCreds decodes a record written by EncodeAppCreds.
func ParseAppCreds(b []byte) (AppCreds, error) {
	if len(b) > maxCredsRecord {
		return AppCreds{}, errdefs.InvalidArgument("credentials record of %d bytes is too long", len(b))
	}
	var c struct {
		UID    *uint32  `json:"uid"`
		GID    *uint32  `json:"gid"`
		Groups []uint32 `json:"groups"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return AppCreds{}, errdefs.InvalidArgument("credentials record: %v", err)
	}
	if c.UID == nil || c.GID == nil {
		return AppCreds{}, errdefs.InvalidArgument("credentials record: uid or gid missing")
	}
	return AppCreds{UID: *c.UID, GID: *c.GID, Groups: c.Groups}, nil
}

// EncodeAppCreds encodes a record for CredsFile.
func EncodeAppCreds(c AppCreds) ([]byte, error) {
	if c.Groups == nil {
		c.Groups = []uint32{}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode credentials record: %w", err)
	}
	return append(b, '\n'), nil
}
