//go:build torture

package torture

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// fuzzCallTimeout bounds each nscn call of the manifest fuzzer: a fuzzed
// manifest must never make nscn hang.
const fuzzCallTimeout = 15 * time.Second

// richManifest uses most of the image manifest's fields, so mutations
// reach their parsers.
func richManifest(s *sentinel) string {
	return `{
  "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/torture/fuzz",
  "labels": [{"name": "version", "value": "1.0"}, {"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
  "app": {
    "exec": ["/bin/app", "--flag", "` + s.dir + `/pwned"],
    "user": "0", "group": "0", "supplementaryGIDs": [1, 2],
    "workingDirectory": "/work",
    "eventHandlers": [{"name": "pre-start", "exec": ["/bin/app", "pre"]}, {"name": "post-stop", "exec": ["/bin/app", "post"]}],
    "environment": [{"name": "PATH", "value": "/bin"}, {"name": "HOME", "value": "/root"}],
    "mountPoints": [{"name": "data", "path": "/data", "readOnly": true}, {"name": "cache", "path": "/var/cache"}],
    "ports": [{"name": "http", "protocol": "tcp", "port": 80, "count": 1, "socketActivated": false}],
    "isolators": [
      {"name": "resource/memory", "value": {"limit": "64Mi", "request": "32Mi"}},
      {"name": "resource/cpu", "value": {"limit": "500m", "request": "250m"}},
      {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_NET_BIND_SERVICE"]}},
      {"name": "os/linux/no-new-privileges", "value": true},
      {"name": "os/linux/seccomp-remove-set", "value": {"set": ["@appc.io/empty"], "errno": "ENOSYS"}}
    ]
  },
  "dependencies": [{"imageName": "nosecone.dev/busybox", "labels": [{"name": "version", "value": "1.35.0"}]}],
  "pathWhitelist": ["/bin/app", "/etc/passwd", "/work"],
  "annotations": [{"name": "authors", "value": "torture"}, {"name": "created", "value": "2025-01-02T15:04:05Z"}]
}`
}

// fieldNames are the manifest's keys, for mutations that add one.
var fieldNames = []string{
	"acKind", "acVersion", "name", "labels", "app", "exec", "user", "group", "supplementaryGIDs",
	"eventHandlers", "workingDirectory", "environment", "isolators", "mountPoints", "ports", "annotations",
	"dependencies", "pathWhitelist", "imageName", "imageID", "size", "value", "path", "readOnly", "protocol", "port",
	"count", "socketActivated", "limit", "request", "set", "errno", "recursive", "appName", "mounts",
}

// interesting returns values that break parsers or aim outside a target.
func interesting(rng *rand.Rand, s *sentinel) any {
	vals := []any{
		"", "..", "../../../../../../../..", climb + s.dir[1:] + "/pwned", s.dir + "/pwned", s.canary, "/", "/proc/self/root",
		"/dev/sda", "rootfs/../..", strings.Repeat("a", 1<<16), strings.Repeat("../", 2000), "\x00", "a\x00b", "😀", "\u202e",
		"sha512-", "sha512-" + strings.Repeat("0", 128), "example.com/x", "-1", "64Ei", "9999999999999999999Mi", "0x10",
		-1, 0, 1, 65536, 4294967296, 9.3e18, -9.3e18, 0.5, true, false, nil,
		[]any{},
		map[string]any{},
		[]any{nil},
		[]any{""},
		map[string]any{"name": "", "value": ""},
	}
	v := vals[rng.IntN(len(vals))]
	if rng.IntN(8) == 0 {
		// Deep nesting.
		depth := rng.IntN(2000)
		for range depth {
			v = []any{v}
		}
	}
	return v
}

// mutateValue changes one random node of v and returns the new v.
func mutateValue(rng *rand.Rand, v any, s *sentinel, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 || rng.IntN(6) == 0 {
			switch rng.IntN(3) {
			case 0:
				x[fieldNames[rng.IntN(len(fieldNames))]] = interesting(rng, s)
			case 1:
				for k := range x {
					delete(x, k)
					break
				}
			default:
				return interesting(rng, s)
			}
			return x
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		k := keys[rng.IntN(len(keys))]
		x[k] = mutateValue(rng, x[k], s, depth+1)
		return x
	case []any:
		if len(x) == 0 || rng.IntN(6) == 0 {
			switch rng.IntN(4) {
			case 0:
				return append(x, interesting(rng, s))
			case 1:
				if len(x) > 0 {
					return append(x, x[rng.IntN(len(x))])
				}
				return x
			case 2:
				if len(x) > 0 {
					i := rng.IntN(len(x))
					return append(x[:i], x[i+1:]...)
				}
				return x
			default:
				return interesting(rng, s)
			}
		}
		i := rng.IntN(len(x))
		x[i] = mutateValue(rng, x[i], s, depth+1)
		return x
	default:
		if rng.IntN(3) == 0 && depth > 0 {
			// Keep the type, change the value.
			switch y := v.(type) {
			case string:
				return y + y
			case float64:
				return -y - 1
			}
		}
		return interesting(rng, s)
	}
}

// mutateTop mutates a manifest, mostly below its identity (acKind,
// acVersion, name), whose parsers the other fields' would otherwise
// rarely reach.
func mutateTop(rng *rand.Rand, v any, s *sentinel) any {
	m, ok := v.(map[string]any)
	if !ok || rng.IntN(10) == 0 {
		return mutateValue(rng, v, s, 0)
	}
	var keys []string
	for k := range m {
		if k != "acKind" && k != "acVersion" && k != "name" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) == 0 || rng.IntN(8) == 0 {
		m[fieldNames[rng.IntN(len(fieldNames))]] = interesting(rng, s)
		return m
	}
	k := keys[rng.IntN(len(keys))]
	m[k] = mutateValue(rng, m[k], s, 1)
	return m
}

// tokens are spliced into the JSON text by the byte-level mutations.
var tokens = []string{
	"{", "}", "[", "]", ",", ":", `"`, `\`, `\u0000`, `\ud800`, "null", "1e309", "-0", "9223372036854775808",
	"0.000000000000000000000000000001", `"app":`, `"exec":[]`, `"name":"a"`, "\xff\xfe", "//", "/*", "\n", " ",
}

// mutateBytes changes the JSON text at random places.
func mutateBytes(rng *rand.Rand, b []byte) []byte {
	for range 1 + rng.IntN(3) {
		if len(b) == 0 {
			b = []byte("{}")
		}
		i := rng.IntN(len(b))
		switch rng.IntN(5) {
		case 0:
			b[i] ^= byte(1 << rng.IntN(8))
		case 1:
			tok := tokens[rng.IntN(len(tokens))]
			b = append(b[:i], append([]byte(tok), b[i:]...)...)
		case 2:
			j := min(len(b), i+1+rng.IntN(16))
			b = append(b[:i], b[j:]...)
		case 3:
			j := min(len(b), i+1+rng.IntN(64))
			chunk := append([]byte(nil), b[i:j]...)
			k := rng.IntN(len(b))
			b = append(b[:k], append(chunk, b[k:]...)...)
		default:
			b = b[:i]
		}
	}
	return b
}

// fuzzStats counts what the fuzzer's images did.
type fuzzStats struct {
	iterations, accepted, rendered, prepared int
	codes                                    map[string]int
	messages                                 map[string]int
}

func (st *fuzzStats) note(step string, r result) {
	st.codes[fmt.Sprintf("%s exit %d", step, r.code)]++
	if r.code != 0 {
		msg := strings.TrimSpace(r.stderr)
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		if len(msg) > 60 {
			msg = msg[:60]
		}
		st.messages[step+": "+msg]++
	}
}

// TestManifestFuzz fetches images with mutated manifests for a while
// (1 minute, 10 s with -test.short) and renders, inspects and prepares
// those nscn accepts. No call may panic, hang or write outside its
// target, and the store must verify at the end.
func TestManifestFuzz(t *testing.T) {
	s := seed(t)
	rng := newRand(t, s)
	dur := time.Minute
	if testing.Short() {
		dur = 10 * time.Second
	}
	if *fuzzTimeFlag > 0 {
		dur = *fuzzTimeFlag
	}
	e := newEnv(t)
	sent := newSentinel(t)
	work := t.TempDir()
	bb := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", busybox(t)).stdout)
	seeds := []string{
		`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/torture/fuzz"}`,
		richManifest(sent),
		e.ok("image", "cat-manifest", bb).stdout,
	}
	var parsed []any
	for _, sd := range seeds {
		var v any
		if err := json.Unmarshal([]byte(sd), &v); err != nil {
			t.Fatalf("seed manifest does not parse: %v\n%s", err, sd)
		}
		parsed = append(parsed, v)
	}
	rootfs := []member{
		dir0(), dir("rootfs/bin/"), file("rootfs/bin/app", "#!/bin/sh\n"), dir("rootfs/etc/"),
		file("rootfs/etc/passwd", "root:x:0:0::/:/bin/sh\n"), dir("rootfs/work/"),
	}

	st := &fuzzStats{codes: map[string]int{}, messages: map[string]int{}}
	check := func(step string, m []byte, r result) {
		t.Helper()
		st.note(step, r)
		if r.took > 2*time.Second {
			t.Logf("iteration %d, %s took %v (exit %d): %s", st.iterations, step, r.took.Round(time.Millisecond), r.code, short(r.stderr))
		}
		problem := ""
		switch {
		case r.timedOut:
			problem = fmt.Sprintf("hang: killed after %v", fuzzCallTimeout)
		case r.panicked():
			problem = "panic"
		case r.code != 0 && r.code != 254 && r.code != 2:
			problem = fmt.Sprintf("unexpected exit status %d", r.code)
		default:
			if bad := sent.check(); len(bad) > 0 {
				problem = "wrote outside its target: " + strings.Join(bad, "; ")
			}
		}
		if problem != "" {
			p := filepath.Join(t.TempDir(), "manifest")
			_ = os.WriteFile(p, m, 0o644)
			t.Fatalf("seed %d, iteration %d, %s: %s\nmanifest (kept in %s): %.2000s\n%s", s, st.iterations, step, problem, p, m, r)
		}
	}
	deadline := time.Now().Add(dur)
	for time.Now().Before(deadline) {
		st.iterations++
		base := parsed[rng.IntN(len(parsed))]
		var m []byte
		{
			// A deep copy, then structural mutations, then sometimes
			// byte-level ones.
			b, _ := json.Marshal(base)
			var v any
			_ = json.Unmarshal(b, &v)
			for range 1 + rng.IntN(3) {
				v = mutateTop(rng, v, sent)
			}
			m, _ = json.Marshal(v)
			if rng.IntN(6) == 0 {
				m = mutateBytes(rng, m)
			}
		}
		aci := writeACI(t, work, "fuzz.aci", m, rootfs)
		r := e.run(fuzzCallTimeout, "--insecure-options=image", "fetch", aci)
		check("fetch", m, r)
		if r.code != 0 {
			continue
		}
		st.accepted++
		id := strings.TrimSpace(r.stdout)
		check("cat-manifest", m, e.run(fuzzCallTimeout, "image", "cat-manifest", id))
		out := filepath.Join(work, fmt.Sprintf("render-%d", st.iterations))
		r = e.run(fuzzCallTimeout, "image", "render", id, out)
		check("render", m, r)
		if r.code == 0 {
			st.rendered++
		}
		_ = os.RemoveAll(out)
		if rng.IntN(3) == 0 {
			r = e.run(fuzzCallTimeout, "prepare", id)
			check("prepare", m, r)
			if r.code == 0 {
				st.prepared++
				check("rm", m, e.run(fuzzCallTimeout, "rm", strings.TrimSpace(r.stdout)))
			}
		}
		check("image rm", m, e.run(fuzzCallTimeout, "image", "rm", id))
	}
	var lines []string
	for k, v := range st.codes {
		lines = append(lines, fmt.Sprintf("%5d  %s", v, k))
	}
	for k, v := range st.messages {
		if v > 2 {
			lines = append(lines, fmt.Sprintf("%5d  %s", v, k))
		}
	}
	sort.Strings(lines)
	t.Logf("%d fuzzed manifests in %v: %d accepted, %d rendered, %d prepared\n%s", st.iterations, dur, st.accepted, st.rendered, st.prepared, strings.Join(lines, "\n"))
	if st.accepted == 0 {
		t.Fatalf("no fuzzed manifest was accepted: the mutations only test the JSON parser")
	}
	checkClean(t, e)
}

// TestHostileManifests fetches hand-written manifests that once crashed
// or could crash a parser: none may panic.
func TestHostileManifests(t *testing.T) {
	e := newEnv(t)
	work := t.TempDir()
	app := func(isolators string) string {
		return `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/torture/m","app":{"exec":["/x"],"user":"0","group":"0","isolators":[` + isolators + `]}}`
	}
	tests := []struct {
		name     string
		manifest string
	}{
		// Found by TestManifestFuzz: appc/spec v0.8.11
		// Isolator.UnmarshalJSON dereferences the missing value.
		{name: "capabilities isolator without value", manifest: app(`{"name":"os/linux/capabilities-retain-set"}`)},
		{name: "memory isolator without value", manifest: app(`{"name":"resource/memory"}`)},
		{name: "isolator with null value", manifest: app(`{"name":"resource/cpu","value":null}`)},
		{name: "unknown isolator without value", manifest: app(`{"name":"example.com/unknown"}`)},
		{name: "deep nesting", manifest: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/torture/m","annotations":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`},
		{name: "huge number", manifest: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/torture/m","app":{"exec":["/x"],"user":"0","group":"0","ports":[{"name":"p","protocol":"tcp","port":1e309}]}}`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aci := writeACI(t, work, fmt.Sprintf("m-%d.aci", i), []byte(tt.manifest), []member{dir0()})
			r := e.run(fuzzCallTimeout, "--insecure-options=image", "fetch", aci)
			if r.timedOut || r.panicked() {
				t.Fatalf("nscn crashed or hung on this manifest:\n%.300s\n%s", tt.manifest, short(r.stderr))
			}
		})
	}
}
