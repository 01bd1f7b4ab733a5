//go:build functional

package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrivateUsersRootOwnsNothingOfTheHost is class 11 of
// Documentation/security.md: root in a pod, with appc's default
// capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN among them), tries
// to change a host file it was given in a writable host volume. Without
// --private-users the pod's root is the host's and succeeds (the baseline
// the test checks first); with it the pod's root is an unprivileged host
// user of its own range, its capabilities hold only in its own user
// namespace, and every attempt fails.
func TestPrivateUsersRootOwnsNothingOfTheHost(t *testing.T) {
	const attack = `cd /vol; ` +
		`echo owned >> secret && echo appended; ` +
		`chmod 0666 secret && echo chmodded; ` +
		`chown 0:0 secret && echo chowned; ` +
		`cat secret >/dev/null && echo read; ` +
		`rm -f secret && echo removed; ` +
		`echo done`
	tests := []struct {
		name  string
		flags []string
		// got lists the lines the attack prints when it succeeds.
		got []string
	}{
		{name: "host root", got: []string{"appended", "chmodded", "chowned", "read", "removed"}},
		{name: "private users", flags: []string{"--private-users"}, got: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			vol := filepath.Join(t.TempDir(), "vol")
			if err := os.Mkdir(vol, 0o755); err != nil {
				t.Fatal(err)
			}
			secret := filepath.Join(vol, "secret")
			if err := os.WriteFile(secret, []byte("the host's\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append(runArgs(t, nspawn, "--volume=vol,kind=host,source="+vol), tt.flags...)
			args = append(args, busyboxACI(t), "--mount=volume=vol,target=/vol", "--exec=/bin/sh", "--", "-c", attack)
			r := e.ok(args...)
			var did []string
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				if l != "done" {
					did = append(did, l)
				}
			}
			if strings.Join(did, ",") != strings.Join(tt.got, ",") {
				t.Fatalf("the pod's root did %q to a host file, want %q\nstderr: %s", did, tt.got, r.stderr)
			}
			if tt.got == nil {
				b, err := os.ReadFile(secret) //nolint:gosec // G304: the test's own file
				if err != nil || string(b) != "the host's\n" {
					t.Fatalf("the host file is %q, %v after the attack", b, err)
				}
				if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("the host file's mode is %v, %v after the attack", fi, err)
				}
			}
		})
	}
}
