package prepare

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/oci/annotation"
)

// ociEntrypoint returns the entrypoint of an image fetched from an OCI
// source (recorded apart from its cmd when it was converted); ok is false
// for an ACI.
func ociEntrypoint(m *schema.ImageManifest) (types.Exec, bool) {
	raw, ok := m.Annotations.Get(annotation.Entrypoint)
	if !ok {
		return nil, false
	}
	var ep []string
	if err := json.Unmarshal([]byte(raw), &ep); err != nil {
		return nil, false
	}
	return types.Exec(ep), true
}

// groupGiven reports whether --group was given for the i-th app.
func groupGiven(o Options, i int) bool {
	return i < len(o.Apps) && o.Apps[i].Group != ""
}

// primaryGroup sets the group of an app whose OCI image names a user but
// no group to that user's primary group in the image's /etc/passwd, as
// docker does (gid 0 when the user has no entry there). want is false
// when the user chose the group, or wrote the pod manifest.
func primaryGroup(im *image, app *types.App, want bool) error {
	if !want || app == nil {
		return nil
	}
	if _, ok := im.manifest.Annotations.Get(annotation.PrimaryGroup); !ok {
		return nil
	}
	gid, err := lookupPrimaryGID(im.tree.Rootfs, app.User)
	if err != nil {
		return err
	}
	app.Group = gid
	return nil
}

// maxPasswdSize bounds what is read of an image's /etc/passwd.
const maxPasswdSize = 4 << 20

// lookupPrimaryGID finds user (a name or a uid) in rootfs/etc/passwd and
// returns its gid, "0" when it is not there. The rootfs is the image's:
// the file is opened inside it (os.Root), so a symlink cannot lead out.
func lookupPrimaryGID(rootfs, user string) (string, error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return "", fmt.Errorf("open image rootfs: %w", err)
	}
	defer func() { _ = root.Close() }()
	f, err := root.Open("etc/passwd")
	if errors.Is(err, fs.ErrNotExist) {
		return "0", nil
	}
	if err != nil {
		return "", errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("read the image's /etc/passwd: %w", err))
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(io.LimitReader(f, maxPasswdSize))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 4 {
			continue
		}
		if fields[0] == user || fields[2] == user {
			return fields[3], nil
		}
	}
	return "0", nil
}

// explainLimit names the flag behind a size limit an OCI image's layers
// passed while they were rendered.
func explainLimit(err error) error {
	var le *aci.LimitError
	if !errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("the image's layers are larger than %d bytes uncompressed, the limit set by --max-image-size "+
		"(raise it to run a larger image you trust): %w", le.Limit, err)
}
