// Package appspec computes, from the pod manifest, what every stage1
// flavor needs to start an app: its exec, environment (appc spec/ace.md,
// "Execution Environment"), working directory and event handlers
// (AppSpec), its user and groups resolved from the app's own /etc/passwd
// and /etc/group (spec/aci.md, "user, group"), and the lookup of its
// executable inside its rootfs.
//
// Everything here works on values and fs.FS views, needs no privileges,
// and is unit-tested without root; LoadPod only reads the pod manifest.
package appspec

// ContainerEnv is the value of the "container" environment variable every
// app process gets (ace.md: the name of the executor).
const ContainerEnv = "nscn"

// DefaultPath is the PATH an app gets when its environment sets none
// (ace.md, "Execution Environment").
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
