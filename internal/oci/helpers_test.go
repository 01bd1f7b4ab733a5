package oci

import (
	"fmt"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func portNames(ps []types.Port) string {
	var s []string
	for _, p := range ps {
		n := p.Name.String()
		if p.Count > 1 {
			n += fmt.Sprintf("*%d", p.Count)
		}
		s = append(s, n)
	}
	return strings.Join(s, ",")
}

func mountNames(ms []types.MountPoint) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name.String()+"="+m.Path)
	}
	return strings.Join(s, ",")
}

func label(m *schema.ImageManifest, n string) string {
	v, _ := m.GetLabel(n)
	return v
}

func anno(m *schema.ImageManifest, n string) string {
	v, _ := m.Annotations.Get(n)
	return v
}

func env(m *schema.ImageManifest) string {
	var s []string
	for _, e := range m.App.Environment {
		s = append(s, e.Name+"="+e.Value)
	}
	return strings.Join(s, ",")
}
