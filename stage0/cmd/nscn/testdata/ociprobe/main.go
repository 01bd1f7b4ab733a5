// Command ociprobe is the app of the OCI image the root test runs: it
// prints what the app was started with, on one line.
package main

import (
	"fmt"
	"os"
)

func main() {
	wd, _ := os.Getwd()
	motd := "present"
	if _, err := os.Lstat("/etc/motd"); err != nil {
		motd = "absent"
	}
	fmt.Printf("probe args=%v uid=%d gid=%d cwd=%s FOO=%s motd=%s\n", os.Args[1:], os.Getuid(), os.Getgid(), wd, os.Getenv("FOO"), motd)
}
