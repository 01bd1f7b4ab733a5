package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Stage1DefaultFile is the stage1.d file WriteStage1Default writes.
const Stage1DefaultFile = "50-tests.json"

// WriteStage1Default makes the stage1 image at aci the default stage1 in
// the config dir dir (stage1.d, Documentation/stage1-abi.md), as an
// administrator would.
func WriteStage1Default(t testing.TB, dir, aci string) {
	t.Helper()
	d := filepath.Join(dir, "stage1.d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"nscnKind":"stage1","nscnVersion":"v1","location":%q}`, aci)
	if err := os.WriteFile(filepath.Join(d, Stage1DefaultFile), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}
