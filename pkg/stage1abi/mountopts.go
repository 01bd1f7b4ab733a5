package stage1abi

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// AnnotationMountOptions is a runtime app's annotation in the pod
// manifest (InterfaceVersionMountOptions): a JSON list of MountOption,
// what appc's volumes cannot say of the app's mounts (the CRI's mounts
// need it). A mount the list does not name is mounted as appc says.
const AnnotationMountOptions = "nscn.io/mount-options"

// Values of MountOption.ReadOnly.
const (
	// ReadOnlyTop makes only the mount itself read-only: mounts below it
	// that a recursive bind copied stay as they are on the host (the
	// CRI's readonly without recursive_read_only, runc's "ro,rbind").
	ReadOnlyTop = "top"
	// ReadOnlyRecursive makes the mount and every mount below it
	// read-only (mount_setattr(2) with AT_RECURSIVE), what appc says of
	// a read-only recursive host volume.
	ReadOnlyRecursive = "recursive"
)

// Values of MountOption.Propagation (mount_namespaces(7)).
const (
	// PropagationPrivate: no mount event crosses between the host and
	// the app (the CRI's PROPAGATION_PRIVATE, Kubernetes' default).
	PropagationPrivate = "private"
	// PropagationSlave: mounts the host makes below the source appear in
	// the app, not the other way round (PROPAGATION_HOST_TO_CONTAINER).
	PropagationSlave = "rslave"
	// PropagationShared: mounts made on either side appear on the other
	// (PROPAGATION_BIDIRECTIONAL). The source must be a shared mount on
	// the host for anything to propagate.
	PropagationShared = "rshared"
)

// MountOption is one entry of AnnotationMountOptions.
type MountOption struct {
	// Volume names the volume of the app's mount: a pod volume, or the
	// mount's appVolume.
	Volume string `json:"volume"`
	// ReadOnly, for a read-only volume, is ReadOnlyTop or
	// ReadOnlyRecursive; empty keeps appc's rule.
	ReadOnly string `json:"readOnly,omitempty"`
	// Propagation is a Propagation* value; empty keeps the stage1's
	// default.
	Propagation string `json:"propagation,omitempty"`
}

// ParseMountOptions reads an AnnotationMountOptions value: unknown fields
// and values, an entry without a volume and two entries for one volume
// are errors.
func ParseMountOptions(v string) ([]MountOption, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(v)))
	dec.DisallowUnknownFields()
	var out []MountOption
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AnnotationMountOptions, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("annotation %s: data after the list", AnnotationMountOptions)
	}
	seen := map[string]bool{}
	for _, o := range out {
		if o.Volume == "" {
			return nil, fmt.Errorf("annotation %s: an entry names no volume", AnnotationMountOptions)
		}
		if seen[o.Volume] {
			return nil, fmt.Errorf("annotation %s: volume %q is named twice", AnnotationMountOptions, o.Volume)
		}
		seen[o.Volume] = true
		switch o.ReadOnly {
		case "", ReadOnlyTop, ReadOnlyRecursive:
		default:
			return nil, fmt.Errorf("annotation %s: volume %q: readOnly %q is not %q or %q", AnnotationMountOptions, o.Volume, o.ReadOnly, ReadOnlyTop, ReadOnlyRecursive)
		}
		switch o.Propagation {
		case "", PropagationPrivate, PropagationSlave, PropagationShared:
		default:
			return nil, fmt.Errorf("annotation %s: volume %q: propagation %q is not %q, %q or %q", AnnotationMountOptions, o.Volume, o.Propagation, PropagationPrivate, PropagationSlave, PropagationShared)
		}
	}
	return out, nil
}
