package apiservice

import (
	"path"
	"slices"
	"strings"

	v1alpha "github.com/nosecone/nscn/api/v1alpha"
)

// The filters of rkt's v1alpha API: within one filter every non-empty
// condition must hold; with several filters, one is enough; no filter
// selects everything.

// podSelected reports whether any of filters selects p.
func podSelected(filters []*v1alpha.PodFilter, p *v1alpha.Pod) bool {
	if len(filters) == 0 {
		return true
	}
	return slices.ContainsFunc(filters, func(f *v1alpha.PodFilter) bool { return podMatches(f, p) })
}

// podMatches reports whether p meets every condition of f: its ID and
// state are among the listed ones (any), it has all the apps, images,
// networks and annotations listed (all), its cgroup is listed, and it
// holds one of the listed cgroups.
func podMatches(f *v1alpha.PodFilter, p *v1alpha.Pod) bool {
	if len(f.Ids) > 0 && !slices.ContainsFunc(f.Ids, func(id string) bool { return strings.EqualFold(id, p.Id) }) {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, p.State) {
		return false
	}
	for _, name := range f.AppNames {
		if !slices.ContainsFunc(p.Apps, func(a *v1alpha.App) bool { return a.Name == name }) {
			return false
		}
	}
	for _, id := range f.ImageIds {
		if !slices.ContainsFunc(p.Apps, func(a *v1alpha.App) bool { return a.Image != nil && sameImage(id, a.Image.Id) }) {
			return false
		}
	}
	for _, name := range f.NetworkNames {
		if !slices.ContainsFunc(p.Networks, func(n *v1alpha.Network) bool { return n.Name == name }) {
			return false
		}
	}
	if !hasAll(p.Annotations, f.Annotations) {
		return false
	}
	if len(f.Cgroups) > 0 && (p.Cgroup == "" || !slices.Contains(f.Cgroups, p.Cgroup)) {
		return false
	}
	if len(f.PodSubCgroups) > 0 && !slices.ContainsFunc(f.PodSubCgroups, func(c string) bool { return underCgroup(c, p.Cgroup) }) {
		return false
	}
	return true
}

// underCgroup reports whether cgroup c is the pod's cgroup or below it.
func underCgroup(c, podCgroup string) bool {
	if podCgroup == "" {
		return false
	}
	base := strings.TrimSuffix(podCgroup, "/")
	return c == podCgroup || c == base || strings.HasPrefix(c, base+"/")
}

// sameImage reports whether ref names image ID id: the full ID, the
// store's shorter key (the ID's first 64 hex digits), or a longer prefix
// of either; case does not matter.
func sameImage(ref, id string) bool {
	ref, id = strings.ToLower(ref), strings.ToLower(id)
	const minRef = len("sha512-") + 1
	if len(ref) < minRef || id == "" {
		return false
	}
	return strings.HasPrefix(id, ref)
}

// hasAll reports whether have holds every key of want with its value.
func hasAll(have, want []*v1alpha.KeyValue) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h *v1alpha.KeyValue) bool { return h.Key == w.Key && h.Value == w.Value }) {
			return false
		}
	}
	return true
}

// imageSelected reports whether any of filters selects im.
func imageSelected(filters []*v1alpha.ImageFilter, im *v1alpha.Image) bool {
	if len(filters) == 0 {
		return true
	}
	return slices.ContainsFunc(filters, func(f *v1alpha.ImageFilter) bool { return imageMatches(f, im) })
}

// imageMatches reports whether im meets every condition of f: an ID, a
// name prefix, a base name, a keyword and a full name among the listed
// ones (any of each), all the labels and annotations listed, and its
// import time strictly between imported_after and imported_before.
func imageMatches(f *v1alpha.ImageFilter, im *v1alpha.Image) bool {
	anyOf := func(list []string, ok func(string) bool) bool {
		return len(list) == 0 || slices.ContainsFunc(list, ok)
	}
	switch {
	case !anyOf(f.Ids, func(id string) bool { return sameImage(id, im.Id) }),
		!anyOf(f.Prefixes, func(p string) bool { return strings.HasPrefix(im.Name, p) }),
		!anyOf(f.BaseNames, func(b string) bool { return path.Base(im.Name) == b }),
		!anyOf(f.Keywords, func(k string) bool { return strings.Contains(im.Name, k) }),
		!anyOf(f.FullNames, func(n string) bool { return im.Name == n }),
		!hasAll(im.Labels, f.Labels),
		!hasAll(im.Annotations, f.Annotations),
		f.ImportedAfter != 0 && im.ImportTimestamp <= f.ImportedAfter,
		f.ImportedBefore != 0 && im.ImportTimestamp >= f.ImportedBefore:
		return false
	}
	return true
}

// eventSelected reports whether e meets every condition of f but the
// times, which the stream applies.
func eventSelected(f *v1alpha.EventFilter, e *v1alpha.Event) bool {
	if f == nil {
		return true
	}
	return (len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
		(len(f.Ids) == 0 || slices.Contains(f.Ids, e.Id)) &&
		(len(f.Names) == 0 || slices.Contains(f.Names, e.From))
}
