package units

import (
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/testutil"
)

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) { t.Helper(); testutil.Golden(t, name, []byte(got)) }

// render joins the files as they would be written, each under a header.
func render(files []File) string {
	var b strings.Builder
	for _, f := range files {
		b.WriteString("### " + f.Name + "\n" + f.Content)
	}
	return b.String()
}

// testConfig gives each app its FIFOs under /nscn/io/NAME/.
func testConfig(apps ...App) Config {
	for i := range apps {
		if !apps[i].Console && apps[i].Stdout == "" {
			apps[i].Stdout = "/nscn/io/" + apps[i].Name + "/stdout"
			apps[i].Stderr = "/nscn/io/" + apps[i].Name + "/stderr"
		}
	}
	return Config{Apps: apps, Helper: "/nscn/app"}
}

func TestGenerateGolden(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "one-app", cfg: testConfig(App{Name: "web"})},
		{name: "three-apps-with-handlers", cfg: testConfig(App{Name: "a"}, App{Name: "b-2", PreStart: true}, App{Name: "c", PostStop: true, PreStart: true})},
		{name: "interactive-console", cfg: testConfig(App{Name: "sh", Console: true})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Generate(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".golden", render(files))
		})
	}
}

func TestGenerateRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no apps", cfg: testConfig()},
		{name: "name with a space", cfg: testConfig(App{Name: "a b"})},
		{name: "name with a newline", cfg: testConfig(App{Name: "a\nExecStart=/bin/evil"})},
		{name: "uppercase name", cfg: testConfig(App{Name: "Web"})},
		{name: "name with a slash", cfg: testConfig(App{Name: "../x"})},
		{name: "relative helper", cfg: Config{Apps: []App{{Name: "a", Stdout: "/o", Stderr: "/e"}}, Helper: "app"}},
		{name: "specifier in a path", cfg: Config{Apps: []App{{Name: "a", Stdout: "/o%n", Stderr: "/e"}}, Helper: "/nscn/app"}},
		{name: "no stdout path", cfg: Config{Apps: []App{{Name: "a", Stderr: "/e"}}, Helper: "/nscn/app"}},
		{name: "space in stderr path", cfg: Config{Apps: []App{{Name: "a", Stdout: "/o", Stderr: "/e rr"}}, Helper: "/nscn/app"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Generate(tt.cfg); err == nil {
				t.Fatalf("Generate(%+v) succeeded", tt.cfg)
			}
		})
	}
}

func TestServiceName(t *testing.T) {
	if got := ServiceName("web"); got != "app-web.service" {
		t.Fatalf("ServiceName = %q", got)
	}
}
