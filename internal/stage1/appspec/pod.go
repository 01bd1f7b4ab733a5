package appspec

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
)

// LoadPod reads and validates the pod manifest stage0 wrote at path.
func LoadPod(path string) (*schema.PodManifest, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return nil, fmt.Errorf("read pod manifest: %w", err)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(data, &pm); err != nil {
		return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "parse pod manifest %s: %w", path, err)
	}
	return &pm, nil
}
