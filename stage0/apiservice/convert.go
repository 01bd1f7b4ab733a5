package apiservice

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/stage0/podview"
	"github.com/nosecone/nscn/store/index"
)

// podState maps a pod's state to the API's. Pods marked by gc (exited
// garbage, garbage) are POD_STATE_GARBAGE, as in rkt.
func podState(s pod.State) v1alpha.PodState {
	switch s {
	case pod.Embryo:
		return v1alpha.PodState_POD_STATE_EMBRYO
	case pod.Preparing:
		return v1alpha.PodState_POD_STATE_PREPARING
	case pod.AbortedPrepare:
		return v1alpha.PodState_POD_STATE_ABORTED_PREPARE
	case pod.Prepared:
		return v1alpha.PodState_POD_STATE_PREPARED
	case pod.Running:
		return v1alpha.PodState_POD_STATE_RUNNING
	case pod.Exited:
		return v1alpha.PodState_POD_STATE_EXITED
	case pod.ExitedGarbage, pod.Garbage:
		return v1alpha.PodState_POD_STATE_GARBAGE
	case pod.Deleting:
		return v1alpha.PodState_POD_STATE_DELETING
	}
	return v1alpha.PodState_POD_STATE_UNDEFINED
}

// keyValues turns annotations into sorted-as-given KeyValues.
func keyValues(as types.Annotations) []*v1alpha.KeyValue {
	out := make([]*v1alpha.KeyValue, 0, len(as))
	for _, a := range as {
		out = append(out, &v1alpha.KeyValue{Key: a.Name.String(), Value: a.Value})
	}
	return out
}

// mapKeyValues turns a map into KeyValues sorted by key.
func mapKeyValues(m map[string]string) []*v1alpha.KeyValue {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*v1alpha.KeyValue, len(keys))
	for i, k := range keys {
		out[i] = &v1alpha.KeyValue{Key: k, Value: m[k]}
	}
	return out
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// podFacts is what a Pod message holds beyond a podview.View.
type podFacts struct {
	cgroup   string
	gcMarked time.Time
	// images are the store's images by full ID; nil leaves the apps'
	// images with what the pod manifest says.
	images map[string]*index.Image
}

// toPod converts a view into the API's Pod, with every field set; the
// caller strips what its request did not ask for.
func toPod(v *podview.View, f podFacts) (*v1alpha.Pod, error) {
	out := &v1alpha.Pod{
		Id:         v.UUID,
		Pid:        int32(v.PID), //nolint:gosec // G115: a pid fits in 32 bits
		State:      podState(v.State),
		Cgroup:     f.cgroup,
		CreatedAt:  unixNano(v.Created),
		StartedAt:  unixNano(v.Started),
		GcMarkedAt: unixNano(f.gcMarked),
	}
	if v.Manifest != nil {
		b, err := json.Marshal(v.Manifest)
		if err != nil {
			return nil, fmt.Errorf("encode manifest of pod %s: %w", v.UUID, err)
		}
		out.Manifest = b
		out.Annotations = keyValues(v.Manifest.Annotations)
	}
	for i, a := range v.Apps {
		app := &v1alpha.App{
			Name:  a.Name,
			Image: &v1alpha.Image{Id: a.ImageID, Name: a.ImageName, Version: a.ImageVersion},
		}
		if im := f.images[a.ImageID]; im != nil {
			app.Image = toImage(im)
			app.Image.Manifest = nil
		}
		switch {
		case a.Exited:
			app.State, app.ExitCode = v1alpha.AppState_APP_STATE_EXITED, int32(a.ExitCode) //nolint:gosec // G115: an exit status fits
		case v.State == pod.Running:
			app.State = v1alpha.AppState_APP_STATE_RUNNING
		}
		if v.Manifest != nil && i < len(v.Manifest.Apps) {
			app.Annotations = keyValues(v.Manifest.Apps[i].Annotations)
		}
		out.Apps = append(out.Apps, app)
	}
	for _, n := range v.Networks {
		nw := &v1alpha.Network{Name: n.Name}
		if n.IP4 != nil {
			nw.Ipv4 = n.IP4.IP.String()
		}
		if n.IP6 != nil {
			nw.Ipv6 = n.IP6.IP.String()
		}
		out.Networks = append(out.Networks, nw)
	}
	return out, nil
}

// summarize strips what ListPods without detail leaves out: the
// manifest, and of each app's image all but its ID.
func summarize(p *v1alpha.Pod) {
	p.Manifest = nil
	for _, a := range p.Apps {
		if a.Image != nil {
			a.Image = &v1alpha.Image{Id: a.Image.Id}
		}
	}
}

// toImage converts a store entry into the API's Image, manifest included.
func toImage(im *index.Image) *v1alpha.Image {
	out := &v1alpha.Image{
		BaseFormat:      &v1alpha.ImageFormat{Type: v1alpha.ImageType_IMAGE_TYPE_APPC},
		Id:              im.ID,
		Name:            im.Name,
		Version:         im.Labels["version"],
		ImportTimestamp: im.ImportTime.Unix(),
		Manifest:        bytes.Clone(im.Manifest),
		Size:            im.Size,
		Labels:          mapKeyValues(im.Labels),
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(im.Manifest, &m); err == nil {
		out.BaseFormat.Version = m.ACVersion.String()
		out.Annotations = keyValues(m.Annotations)
	}
	if im.OCI != nil {
		out.BaseFormat.Type = v1alpha.ImageType_IMAGE_TYPE_OCI
		if strings.Contains(im.OCI.MediaType, "docker") {
			out.BaseFormat.Type = v1alpha.ImageType_IMAGE_TYPE_DOCKER
		}
		out.BaseFormat.Version = im.OCI.MediaType
	}
	return out
}

// cgroupOf is the cgroup of process pid: its line of the unified
// hierarchy ("0::PATH"), else of the name=systemd one, from
// /proc/PID/cgroup (cgroups(7)). "" when the process is gone.
func cgroupOf(pid int) string {
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	return parseCgroup(b)
}

func parseCgroup(b []byte) string {
	var systemd string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case id == "0" && ctrls == "":
			return path
		case ctrls == "name=systemd":
			systemd = path
		}
	}
	return systemd
}
