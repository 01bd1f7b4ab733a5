#!/usr/bin/env bash
# Builds the ACIs the quickstart and the tests use, from Debian's
# busybox-static, with the appc reference tool (actool):
#   busybox.aci  nosecone.dev/busybox: a shell and the busybox applets
#   hello.aci    nosecone.dev/hello: prints a greeting and exits
#   sdapp.aci    nosecone.dev/sdapp: tests/sdapp (sd_notify, socket
#                activation) on busybox, with the supports-systemd-notify
#                annotation and a socket-activated port "sd" (8086/tcp)
# Usage: scripts/build-images.sh OUTDIR [ACTOOL]   (environment: GO, default go,
# which builds tests/sdapp)
set -euo pipefail

out=${1:?usage: build-images.sh OUTDIR [ACTOOL]}
actool=${2:-build/actool}
# The image must not depend on the host's libraries: take a static busybox
# (ldd fails on a static binary).
busybox=""
for cand in /bin/busybox /usr/bin/busybox; do
	if [ -x "$cand" ] && ! ldd "$cand" >/dev/null 2>&1; then
		busybox=$cand
		break
	fi
done
if [ -z "$busybox" ]; then
	echo "build-images: a static busybox is required (apt-get install busybox-static)" >&2
	exit 1
fi
version=$("$busybox" 2>&1 | sed -nE '1s/^BusyBox v([0-9.]+).*/\1/p')

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# rootfs DIR: a busybox userland with a root user and an unprivileged one.
rootfs() {
	local r=$1
	mkdir -p "$r"/{bin,etc,tmp,root,home/user,dev,proc,sys}
	chmod 1777 "$r/tmp"
	install -m 0755 "$busybox" "$r/bin/busybox"
	local applet
	for applet in $("$busybox" --list); do
		[ "$applet" = busybox ] && continue
		ln -sf busybox "$r/bin/$applet"
	done
	cat >"$r/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/false
PW
	cat >"$r/etc/group" <<'GR'
root:x:0:
user:x:1000:
extra:x:1001:user
nogroup:x:65534:
GR
	chown 1000:1000 "$r/home/user"
}

# image NAME EXEC_JSON [PORTS_JSON [ANNOTATIONS_JSON]]: build $out/NAME.aci
# from $work/NAME/rootfs, made first by rootfs unless it exists
image() {
	local name=$1 exec_json=$2 ports_json=${3:-[]} annotations_json=${4:-} dir=$work/$1
	[ -d "$dir/rootfs" ] || rootfs "$dir/rootfs"
	cat >"$dir/manifest" <<MF
{
  "acKind": "ImageManifest",
  "acVersion": "0.8.11",
  "name": "nosecone.dev/$name",
  "labels": [
    {"name": "version", "value": "$version"},
    {"name": "os", "value": "linux"},
    {"name": "arch", "value": "amd64"}
  ],
  "app": {
    "exec": $exec_json,
    "user": "0",
    "group": "0",
    "workingDirectory": "/",
    "environment": [{"name": "GREETING", "value": "Hello from Nose Cone"}],
    "ports": $ports_json
  },
  "annotations": [{"name": "authors", "value": "The Nose Cone developers"}$annotations_json]
}
MF
	"$actool" build --overwrite "$dir" "$out/$name.aci"
	echo "build-images: $out/$name.aci"
}

# busybox names port 80 "http" for the networking tests' --port (httpd).
image busybox '["/bin/sh"]' '[{"name": "http", "protocol": "tcp", "port": 80}]'
# shellcheck disable=SC2016 # the app's shell expands these, inside the pod
image hello '["/bin/sh", "-c", "echo \"$GREETING: app $AC_APP_NAME running as $(id -un) on $(uname -sr)\""]'

# The test program of tests/journal_test.go, static.
rootfs "$work/sdapp/rootfs"
(cd "$(dirname "$0")/.." && CGO_ENABLED=0 "${GO:-go}" build -trimpath -ldflags=-s -o "$work/sdapp/rootfs/bin/sdapp" ./tests/sdapp)
image sdapp '["/bin/sdapp", "listen"]' '[{"name": "sd", "protocol": "tcp", "port": 8086, "socketActivated": true}]' \
	', {"name": "appc.io/executor/supports-systemd-notify", "value": "true"}'
