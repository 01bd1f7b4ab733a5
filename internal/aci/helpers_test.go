package aci

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"
)

// ent describes one tar member for the tests.
type ent struct {
	name   string
	typ    byte
	body   string
	link   string
	mode   int64
	uid    int
	gid    int
	major  int64
	minor  int64
	mtime  time.Time
	xattrs map[string]string
}

var testTime = time.Date(2020, 2, 29, 12, 34, 56, 789000000, time.UTC)

func dirEnt(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }
func fileEnt(name, body string) ent {
	return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}

func symlinkEnt(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}

func hardlinkEnt(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, link: target, mode: 0o644}
}

// buildTar writes the members as a PAX tar, so that xattrs and
// nanosecond times survive.
func buildTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := e.header()
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write tar header %q: %v", e.name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatalf("write tar body %q: %v", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("close tar: %v", err)
	}
	return buf.Bytes()
}

func (e ent) header() *tar.Header {
	mtime := e.mtime
	if mtime.IsZero() {
		mtime = testTime
	}
	hdr := &tar.Header{
		Name:     e.name,
		Typeflag: e.typ,
		Linkname: e.link,
		Mode:     e.mode,
		Uid:      e.uid,
		Gid:      e.gid,
		Devmajor: e.major,
		Devminor: e.minor,
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	}
	if e.typ == tar.TypeReg {
		hdr.Size = int64(len(e.body))
	}
	if len(e.xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range e.xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return hdr
}

const testManifest = `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/test"}`
