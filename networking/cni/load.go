package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
)

// NetDir is the directory, under a configuration directory, that holds
// network configurations.
const NetDir = "net.d"

// Loader finds network configurations by name. A network named in
// LocalConfig/net.d wins over one in SystemConfig/net.d, which wins over a
// built-in network of the same name. In one directory the files are read
// in lexical order and the first file naming a network wins, as libcni
// does. Files ending in .conflist hold a configuration list; .conf and
// .json hold a single plugin configuration.
type Loader struct {
	LocalConfig  string // e.g. /etc/nscn; empty: none
	SystemConfig string // e.g. /usr/lib/nscn; empty: none
	IPAMDataDir  string // host-local dataDir of the built-in networks; empty: the plugin's default
}

// Load returns the network called name. An unknown name is ErrNotFound; a
// configuration file that cannot be parsed is ErrInvalidArgument (a broken
// file fails every lookup in its directory, since its name is unknown).
func (l Loader) Load(name string) (*Network, error) {
	if !ValidName(name) {
		return nil, errdefs.InvalidArgument("invalid network name %q", name)
	}
	for _, dir := range l.dirs() {
		nets, err := loadDir(dir)
		if err != nil {
			return nil, err
		}
		if n, ok := nets[name]; ok {
			return n, nil
		}
	}
	if n, ok := BuiltIn(name, l.IPAMDataDir); ok {
		return n, nil
	}
	return nil, errdefs.NotFound("network %q: no such network (looked in %s and the built-in networks)", name, strings.Join(l.dirs(), ", "))
}

// Names lists every network name Load would find, sorted.
func (l Loader) Names() ([]string, error) {
	names := []string{NetDefault, NetDefaultRestricted}
	for _, dir := range l.dirs() {
		nets, err := loadDir(dir)
		if err != nil {
			return nil, err
		}
		for n := range nets {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (l Loader) dirs() []string {
	var d []string
	for _, c := range []string{l.LocalConfig, l.SystemConfig} {
		if c != "" {
			d = append(d, filepath.Join(c, NetDir))
		}
	}
	return d
}

// loadDir parses every configuration file of dir. A missing dir is empty.
func loadDir(dir string) (map[string]*Network, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read network configurations: %w", err)
	}
	nets := map[string]*Network{}
	for _, e := range entries { // ReadDir sorts by name
		var list bool
		switch filepath.Ext(e.Name()) {
		case ".conflist":
			list = true
		case ".conf", ".json":
		default:
			continue
		}
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p) //nolint:gosec // G304: a network configuration file from the config directories
		if err != nil {
			return nil, fmt.Errorf("read network configuration: %w", err)
		}
		n, err := Parse(data, list, p)
		if err != nil {
			return nil, err
		}
		if _, dup := nets[n.Name]; !dup {
			nets[n.Name] = n
		}
	}
	return nets, nil
}
