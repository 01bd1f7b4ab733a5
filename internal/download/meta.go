package download

import (
	"encoding/json"
	"fmt"
	"os"
)

// meta is what a partial download keeps next to its data so that a later
// Fetch can resume it: which object, at which version, of what length.
type meta struct {
	URL string `json:"url"`
	// ETag is the object's ETag as sent, weak or strong.
	ETag string `json:"etag,omitempty"`
	// Validator is the If-Range value: a strong ETag or a strong
	// Last-Modified date; empty when the object cannot be resumed.
	Validator string `json:"validator,omitempty"`
	// Size is the object's complete length, -1 when unknown.
	Size int64 `json:"size"`
}

// resumable reports whether held bytes of url in the partial file can be
// continued under this meta.
func (m meta) resumable(url string, held int64, immutable bool) bool {
	return m.URL == url && (m.Validator != "" || immutable) && (m.Size < 0 || held <= m.Size)
}

// loadMeta reads the meta file at path. A missing or unreadable file gives
// the zero meta, which resumes nothing.
func loadMeta(path string) (meta, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the download's own partial and state files
	if err != nil {
		return meta{}, fmt.Errorf("read download state: %w", err)
	}
	var m meta
	if err := json.Unmarshal(data, &m); err != nil {
		return meta{}, fmt.Errorf("parse download state %s: %w", path, err)
	}
	return m, nil
}

// saveMeta replaces the meta file at path, through a temporary file and a
// rename so that a kill never leaves half a file.
func saveMeta(path string, m meta) (err error) {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode download state: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) //nolint:gosec // G304: the download's own partial and state files
	if err != nil {
		return fmt.Errorf("write download state: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write download state %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close download state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save download state: %w", err)
	}
	return nil
}
