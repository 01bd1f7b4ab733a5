package entrypoint

import (
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/internal/testutil"
)

func TestPodUnits(t *testing.T) {
	tests := []struct {
		name     string
		apps     []appspec.AppSpec
		console  bool
		mutable  bool
		metadata bool
	}{
		{name: "mutable-empty", mutable: true},
		{name: "two-apps", apps: []appspec.AppSpec{
			{Name: "web", Exec: []string{"/bin/httpd"}},
			{Name: "db", Exec: []string{"/bin/db"}, PreStart: []string{"/bin/init-db"}},
		}},
		{name: "console", apps: []appspec.AppSpec{{Name: "sh", Exec: []string{"/bin/sh"}}}, console: true},
		{name: "metadata", apps: []appspec.AppSpec{{Name: "web", Exec: []string{"/bin/httpd"}}}, metadata: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := sdpod.Pod{Mutable: tt.mutable}
			for _, a := range tt.apps {
				pod.Apps = append(pod.Apps, sdpod.App{Spec: a})
			}
			files, err := podUnits(pod, tt.console, tt.metadata)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, tt.name+".golden", []byte(render(files)))
		})
	}
}

func TestAddedAppUnits(t *testing.T) {
	tests := []struct {
		name string
		app  sdpod.App
		slot int
	}{
		{name: "added-app", app: sdpod.App{Spec: appspec.AppSpec{Name: "web", Exec: []string{"/bin/httpd"}, PostStop: []string{"/bin/clean"}}}, slot: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := addedAppUnits(tt.app, tt.slot)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, tt.name+".golden", []byte(render(files)))
		})
	}
	if _, err := addedAppUnits(sdpod.App{Spec: appspec.AppSpec{Name: "Not/AC"}}, 0); err == nil {
		t.Fatal("an app name that is no AC name was taken")
	}
}

// render joins the files as run writes them, each under a header.
func render(files []units.File) string {
	var b strings.Builder
	for _, f := range files {
		b.WriteString("### " + f.Name + "\n" + f.Content)
	}
	return b.String()
}
