package v1alpha

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestGeneratedCodeIsFresh: api.proto is the one "make generate" last
// generated the Go code from (it records the file's hash), so that an
// edit of the .proto without a regeneration fails here, without protoc.
func TestGeneratedCodeIsFresh(t *testing.T) {
	b, err := os.ReadFile("api.proto")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/api.proto.sha256")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != strings.TrimSpace(string(want)) {
		t.Fatalf("api.proto has sha256 %s, but the Go code was generated from %s: run make generate", got, strings.TrimSpace(string(want)))
	}
}

// TestWireNames: the names a client of rkt's API sends are the ones
// served.
func TestWireNames(t *testing.T) {
	if PublicAPI_ServiceDesc.ServiceName != "v1alpha.PublicAPI" {
		t.Errorf("service %q, want v1alpha.PublicAPI", PublicAPI_ServiceDesc.ServiceName)
	}
	fd := File_api_proto
	if fd.Package() != "v1alpha" {
		t.Errorf("package %q, want v1alpha", fd.Package())
	}
	fields := map[string]map[string]int{
		"Pod":            {"id": 1, "pid": 2, "state": 3, "apps": 4, "networks": 5, "manifest": 6, "annotations": 7, "cgroup": 8, "created_at": 9, "started_at": 10, "gc_marked_at": 11},
		"Image":          {"base_format": 1, "id": 2, "name": 3, "version": 4, "import_timestamp": 5, "manifest": 6, "size": 7, "annotations": 8, "labels": 9},
		"App":            {"name": 1, "image": 2, "state": 3, "exit_code": 4, "annotations": 5},
		"PodFilter":      {"ids": 1, "states": 2, "app_names": 3, "image_ids": 4, "network_names": 5, "annotations": 6, "cgroups": 7, "pod_sub_cgroups": 8},
		"ImageFilter":    {"ids": 1, "prefixes": 2, "base_names": 3, "keywords": 4, "labels": 5, "imported_after": 6, "imported_before": 7, "annotations": 8, "full_names": 9},
		"EventFilter":    {"types": 1, "ids": 2, "names": 3, "since_time": 4, "until_time": 5},
		"GetLogsRequest": {"pod_id": 1, "app_name": 2, "lines": 3, "follow": 4, "since_time": 5, "until_time": 6},
		"KeyValue":       {"Key": 1, "value": 2},
	}
	for msg, want := range fields {
		md := fd.Messages().ByName(protoreflect.Name(msg))
		if md == nil {
			t.Errorf("no message %s", msg)
			continue
		}
		if md.Fields().Len() != len(want) {
			t.Errorf("message %s has %d fields, want %d", msg, md.Fields().Len(), len(want))
		}
		for name, num := range want {
			f := md.Fields().ByName(protoreflect.Name(name))
			if f == nil || int(f.Number()) != num {
				t.Errorf("%s.%s: want field number %d", msg, name, num)
			}
		}
	}
}
