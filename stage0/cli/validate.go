package cli

import (
	"strings"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/networking/netflag"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Checks of flag values that no parser of their own covers. Each returns
// a usage error (errdefs.ErrInvalidArgument: exit 2) that names the flag,
// so that a bad value is refused by stage0 before any pod or store
// change, rather than by the stage1 after one.

// maxHostname is the longest hostname the kernel takes (HOST_NAME_MAX);
// RFC 1123 would allow 253.
const maxHostname = 64

// checkHostname refuses a --hostname that is not an RFC 1123 host name:
// dot-separated labels of letters, digits and inner dashes, at most 64
// characters in all, the kernel's limit for a UTS hostname.
func checkHostname(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > maxHostname {
		return usageErrorf("--hostname %q is %d characters long, over the limit of %d", v, len(v), maxHostname)
	}
	for _, label := range strings.Split(v, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return usageErrorf("--hostname %q is not a host name (RFC 1123: labels of letters, digits and inner dashes, separated by dots)", v)
		}
		for _, r := range label {
			if !isHostnameChar(r) {
				return usageErrorf("--hostname %q is not a host name (RFC 1123: labels of letters, digits and inner dashes, separated by dots)", v)
			}
		}
	}
	return nil
}

func isHostnameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-'
}

// checkNet refuses a --net value the stage1 would refuse.
func checkNet(v string) error {
	if v == "" {
		return nil
	}
	_, err := netflag.Parse(v)
	return err
}

// checkIPC refuses an --ipc value no stage1 takes, before anything is
// fetched; whether the chosen stage1 provides it is the stage1's to say.
func checkIPC(v string) error {
	switch v {
	case "", stage1abi.IPCAuto, stage1abi.IPCPrivate, stage1abi.IPCParent:
		return nil
	}
	return usageErrorf("--ipc %q: want %s, %s or %s", v, stage1abi.IPCAuto, stage1abi.IPCPrivate, stage1abi.IPCParent)
}

// checkPID refuses a --pid value no stage1 takes, before anything is
// fetched; whether the chosen stage1 provides it is the stage1's to say
// (stage1-nspawn from interface version 15).
func checkPID(v string) error {
	switch v {
	case "", stage1abi.PIDAuto, stage1abi.PIDPrivate, stage1abi.PIDParent:
		return nil
	}
	return usageErrorf("--pid %q: want %s, %s or %s", v, stage1abi.PIDAuto, stage1abi.PIDPrivate, stage1abi.PIDParent)
}

// checkNoControl refuses a flag value holding a control character: no
// name, path, address or option nscn takes has one, and a newline or an
// escape sequence in a value that reaches a unit file, a log line or a
// terminal forges what it shows.
func checkNoControl(flag, v string) error {
	if strings.ContainsFunc(v, unicode.IsControl) {
		return usageErrorf("--%s %q: control characters are not allowed", flag, v)
	}
	return nil
}

// checkStringFlags applies checkNoControl to the values of the string
// flags among flags that were set on the command line (or in the
// environment) of c.
func checkStringFlags(c *cli.Context, flags []cli.Flag) error {
	for _, f := range flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			continue
		}
		var vals []string
		switch f.(type) {
		case *cli.StringFlag:
			vals = []string{c.String(name)}
		case *cli.StringSliceFlag:
			vals = c.StringSlice(name)
		}
		for _, v := range vals {
			if err := checkNoControl(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}
