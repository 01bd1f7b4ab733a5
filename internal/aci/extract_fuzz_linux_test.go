package aci

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// The fuzz input is a small program that builds a tar: each entry is
//
//	op, nameLen, nameComp..., linkLen, linkComp...
//
// op%7 picks the type, op&0x80 drops the "rootfs/" prefix of the name, and
// each component byte indexes fuzzVocab. The vocabulary is made of what
// escapes are built from ("..", "/", absolute paths to the sentinel beside
// dest), so that the fuzzer spends its time on hostile shapes rather than
// on random names.
var fuzzVocab = []string{
	"rootfs", "a", "b", "..", ".", "evil", "secret", "", "@sentinel", "/", "etc", "rootfs/evil", "../..", "@sentinel/secret", "c", "passwd",
}

func decodeFuzzProgram(prog []byte, sentinel string) []ent {
	next := func() (byte, bool) {
		if len(prog) == 0 {
			return 0, false
		}
		b := prog[0]
		prog = prog[1:]
		return b, true
	}
	path := func(maxComps int) (string, bool) {
		n, ok := next()
		if !ok {
			return "", false
		}
		var comps []string
		for range int(n) % (maxComps + 1) {
			c, ok := next()
			if !ok {
				break
			}
			comps = append(comps, strings.ReplaceAll(fuzzVocab[int(c)%len(fuzzVocab)], "@sentinel", sentinel))
		}
		return strings.Join(comps, "/"), true
	}
	var ents []ent
	for len(ents) < 64 {
		op, ok := next()
		if !ok {
			break
		}
		name, ok := path(4)
		if !ok {
			break
		}
		link, _ := path(3)
		if op&0x80 == 0 {
			name = "rootfs/" + name
		}
		e := ent{name: name, link: link, mode: int64(op&0x70)<<5 | 0o644}
		switch op % 7 {
		case 0:
			e.typ, e.body = tar.TypeReg, strings.Repeat("x", int(op>>3)%5)
		case 1, 6:
			e.typ, e.mode = tar.TypeDir, e.mode|0o700
		case 2:
			e.typ = tar.TypeSymlink
		case 3:
			e.typ = tar.TypeLink
		case 4:
			e.typ = tar.TypeFifo
		case 5:
			e.typ, e.body = tar.TypeReg, string(make([]byte, 3*holeBlock))+"tail"
		}
		ents = append(ents, e)
	}
	return ents
}

// buildTarLoose is buildTar that skips the entries archive/tar refuses to
// encode instead of failing.
func buildTarLoose(ents []ent) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		if err := tw.WriteHeader(e.header()); err != nil {
			continue
		}
		if e.typ == tar.TypeReg {
			_, _ = tw.Write([]byte(e.body))
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

// FuzzExtractRootfs extracts generated archives and checks that nothing
// outside dest was created or changed, whatever the outcome; and that the
// workers leave the tree a serial extraction leaves, or fail when it
// fails.
func FuzzExtractRootfs(f *testing.F) {
	// A few hand-made programs; more seeds live in testdata/fuzz.
	f.Add([]byte{2, 1, 5, 1, 8, 0, 1, 6, 0})                     // rootfs/evil -> sentinel; rootfs/evil/secret
	f.Add([]byte{3, 1, 1, 1, 13})                                // rootfs/a => sentinel/secret (hardlink)
	f.Add([]byte{0, 2, 3, 3, 0})                                 // rootfs/../..
	f.Add([]byte{2, 1, 1, 1, 9, 1, 2, 1, 10, 0, 0, 2, 1, 15, 0}) // rootfs/a -> /; rootfs/a/etc/; file rootfs/a/passwd
	f.Fuzz(func(t *testing.T, prog []byte) {
		fx := newEscapeFixture(t)
		ents := decodeFuzzProgram(prog, fx.sentinel)
		archive := buildTarLoose(ents)
		for _, opts := range []ExtractOptions{{}, {Filter: func(p string) bool { return !strings.Contains(p, "b") }}} {
			// Errors are expected for many programs; escapes and panics
			// are what the fuzzer hunts.
			// The workers with the archive in memory, the workers with an
			// archive file (which the tar reader maps), serial.
			var (
				errs  [3]error
				snaps [3]string
			)
			for i, tune := range []tuning{{}, {}, {serial: true}} {
				var r io.Reader = bytes.NewReader(archive)
				if i == 1 {
					r = archiveFile(t, archive)
				}
				errs[i] = extract(context.Background(), r, fx.dest, opts, tune)
				fx.check(t)
				snaps[i] = snapshotIgnoringDirTimes(t, fx.dest)
				fx.reset(t)
			}
			for i := range 2 {
				if (errs[i] == nil) != (errs[2] == nil) {
					t.Fatalf("workers (%d): %v; serial: %v", i, errs[i], errs[2])
				}
				if errs[i] == nil && snaps[i] != snaps[2] {
					t.Fatalf("workers (%d) and serial differ (workers -, serial +):\n%s", i, diffSnapshots(snaps[i], snaps[2]))
				}
			}
		}
	})
}
