package nspawn

import (
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
)

// ImageUnitDir is where the image ships the units that are the same for
// every pod (units.Shared; stage1/cmd/mkunits writes them at the image's
// build): the pod's systemd searches it after sdpod.UnitDir, where run
// writes the pod's own units (default.target and the apps'), and where a
// unit of the same name would override the image's. The units the image
// ships cost a pod's start no create in the stage1 overlay.
const ImageUnitDir = "/usr/lib/systemd/system"

// UnitConfig is the units.Config of every stage1-nspawn pod, without its
// apps: the app helper, the pod's journald, and the shared units in the
// image (ImageUnits). Run, app/add and the image's build take it from
// here, so that what the image ships is what run leaves out.
func UnitConfig() units.Config {
	return units.Config{
		Helper:     sdpod.AppHelper,
		Journal:    &units.Journal{Journald: sdpod.Journald, Journalctl: sdpod.Journalctl},
		ImageUnits: true,
	}
}
