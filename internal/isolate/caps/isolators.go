package caps

import (
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Bounding is the bounding set of an app whose image names set in a
// capability isolator: exactly set for an os/linux/capabilities-retain-set
// (retain), Default without set for an os/linux/capabilities-remove-set.
// isolate.PolicyFor enforces it, and stage0 asks the operator to consent
// to what it grants beyond Default before any pod exists.
func Bounding(set Set, retain bool) Set {
	if retain {
		return set
	}
	return Default &^ set
}

// FromIsolators returns the bounding set that the capability isolators
// among isos give an app (see Bounding), and false when there is none and
// the app gets Default. As isolate.PolicyFor applies them, the last
// isolator of a name counts, and a retain-set and a remove-set together
// are an errdefs.ErrInvalidArgument error, as are unknown capabilities.
func FromIsolators(isos types.Isolators) (Set, bool, error) {
	var retain, remove *types.Isolator
	for i := range isos {
		switch isos[i].Name {
		case types.LinuxCapabilitiesRetainSetName:
			retain = &isos[i]
		case types.LinuxCapabilitiesRevokeSetName:
			remove = &isos[i]
		}
	}
	var (
		iso      *types.Isolator
		isRetain bool
	)
	switch {
	case retain != nil && remove != nil:
		return 0, false, errdefs.InvalidArgument("isolators %s and %s cannot be used together", types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName)
	case retain != nil:
		iso, isRetain = retain, true
	case remove != nil:
		iso = remove
	default:
		return Default, false, nil
	}
	var names []types.LinuxCapability
	switch v := iso.Value().(type) {
	case *types.LinuxCapabilitiesRetainSet:
		names = v.Set()
	case *types.LinuxCapabilitiesRevokeSet:
		names = v.Set()
	default:
		return 0, false, errdefs.InvalidArgument("isolator %s has no capability set", iso.Name)
	}
	ns := make([]string, len(names))
	for i, n := range names {
		ns[i] = string(n)
	}
	set, err := ParseSet(ns)
	if err != nil {
		return 0, false, err
	}
	return Bounding(set, isRetain), true, nil
}
