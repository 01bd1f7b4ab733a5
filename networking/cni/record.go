package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/nosecone/nscn/networking/netrecord"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// RecordVersion is the format version of a Record.
const RecordVersion = netrecord.Version

// Record is what the pod directory keeps about one network attachment, in
// net-info/<network name>.json: netrecord.Record (whose package reads
// records without linking the CNI machinery), with what running the
// plugins needs.
type Record netrecord.Record

// ParsedResult decodes Result. It returns nil, nil when there is none.
func (r *Record) ParsedResult() (*types100.Result, error) {
	return (*netrecord.Record)(r).ParsedResult()
}

// ParseResult decodes a CNI result of the current spec version and checks
// that its interface indexes and addresses are well formed. Errors are
// ErrInvalidArgument.
func ParseResult(data []byte) (*types100.Result, error) { return netrecord.ParseResult(data) }

// PodIPs returns the addresses of the result on the pod's interface ifName
// (or not bound to any interface), in result order.
func PodIPs(res *types100.Result, ifName string) []net.IPNet { return netrecord.PodIPs(res, ifName) }

// ParseRecord decodes and checks a record, its recorded configuration
// included. Errors are ErrInvalidArgument.
func ParseRecord(data []byte) (*Record, error) {
	r, err := netrecord.Parse(data)
	if err != nil {
		return nil, err
	}
	if _, err := Parse(r.Config, true, "record "+r.Name); err != nil {
		return nil, err
	}
	return (*Record)(r), nil
}

// CacheDir is libcni's cache directory for the pod (results kept for DEL's
// prevResult): net-info/cache in the pod directory.
func CacheDir(podDir string) string { return filepath.Join(podDir, stage1abi.NetInfoDir, "cache") }

// RecordPath is the file of network name in the pod directory.
func RecordPath(podDir, name string) string { return netrecord.Path(podDir, name) }

// WriteRecord stores r in the pod directory, atomically (write and rename).
func WriteRecord(podDir string, r *Record) error {
	dir := filepath.Join(podDir, stage1abi.NetInfoDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("write network record: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), RecordPath(podDir, r.Name))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write network record %q: %w", r.Name, err)
	}
	return nil
}

// ReadRecords returns the records of the pod directory ordered by Index,
// each checked by ParseRecord. A missing net-info directory means no
// records.
func ReadRecords(podDir string) ([]*Record, error) {
	recs, err := netrecord.Read(podDir, func(data []byte) (*netrecord.Record, error) {
		r, err := ParseRecord(data)
		return (*netrecord.Record)(r), err
	})
	out := make([]*Record, len(recs))
	for i, r := range recs {
		out[i] = (*Record)(r)
	}
	return out, err
}

// RemoveRecord deletes the record of network name; a missing one is fine.
func RemoveRecord(podDir, name string) error {
	if err := os.Remove(RecordPath(podDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network record: %w", err)
	}
	return nil
}
