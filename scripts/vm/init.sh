#!/bin/sh
# /init of the cgroup-v2 test VM (Documentation/testing-vm.md), run by
# busybox sh as PID 1. The Go harness (internal/testutil/vm) bakes it into
# the initramfs with busybox, nscn, the stage1 images, the test images and
# the kernel modules, and appends a second archive with the test scripts
# under /test. It runs in two stages:
#
#  1. From the initramfs: copy the root into a tmpfs and switch_root into
#     it, because systemd-nspawn pivot_roots, which the initramfs (rootfs)
#     cannot do.
#  2. From the tmpfs: mount the API filesystems, cgroup2 alone at
#     /sys/fs/cgroup (no v1 hierarchy, so every controller is on the
#     unified one), load the modules, run each /test/*.sh in name order
#     and power off.
#
# Each script's output (stdout and stderr) is written to the console
# between two marker lines that the harness parses:
#
#   @@nscn-vm begin NAME
#   ...output...
#   @@nscn-vm end NAME status=N
#
# and, after the last script, "@@nscn-vm done". Kernel messages are
# silenced while the scripts run, so they cannot break into the output; a
# failing script's kernel log tail follows its end marker.
# shellcheck shell=sh

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

say() { echo "nscn-vm-init: $*"; }
fail() {
	say "$*"
	echo "@@nscn-vm failed $*"
	poweroff -f
	sleep 5
	exit 1
}

if [ "${1:-}" != stage2 ]; then
	# The first line: under KVM the harness waits for it to know the
	# kernel runs at all (a nested host's KVM can run real mode and hang
	# the kernel's long mode, with nothing on the console).
	echo "@@nscn-vm init"
	/bin/busybox --install -s /bin
	mkdir -p /proc /newroot
	mount -t proc proc /proc || fail "mount /proc"
	mount -t tmpfs -o mode=0755,size=90% root /newroot || fail "mount the tmpfs root"
	for e in /*; do
		case "$e" in
		/proc | /newroot) ;;
		*) cp -a "$e" /newroot/ || fail "copy $e into the tmpfs root" ;;
		esac
	done
	umount /proc
	# If it fails, the shell exits, and so PID 1: the kernel panics and
	# the VM ends (panic=-1, -no-reboot).
	exec switch_root /newroot /init stage2
fi

mkdir -p /proc /sys /dev /run /tmp /var/lib /etc
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts || fail "mount /dev/pts"
mount -t tmpfs -o mode=1777 shm /dev/shm || fail "mount /dev/shm"
mount -t tmpfs -o mode=0755 run /run || fail "mount /run"
mount -t tmpfs -o mode=1777 tmp /tmp || fail "mount /tmp"
# Only the unified hierarchy, with the options a systemd host uses.
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup ||
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/mounts /etc/mtab
hostname nscn-vm
# systemd-nspawn binds the host's os-release into the container
# (/run/host/os-release) and fails without one; every distribution has it.
mkdir -p /usr/lib
printf '%s\n' 'NAME="nscn test VM"' 'ID=nscn-vm' 'PRETTY_NAME="nscn cgroup v2 test VM"' >/usr/lib/os-release
ln -sf ../usr/lib/os-release /etc/os-release
# A machine ID, as every systemd host has one.
tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id

if [ -f /lib/modules/modules.order ]; then
	while read -r m; do
		[ -n "$m" ] || continue
		insmod "/lib/modules/$m" || fail "insmod $m"
	done </lib/modules/modules.order
fi

say "up after $(cut -d' ' -f1 /proc/uptime)s, kernel $(uname -r)"
# Only emergencies reach the console from here on.
echo 1 >/proc/sys/kernel/printk

export NSCN_BIN=/nscn/bin/nscn
export NSCN_STAGE1_NSPAWN_ACI=/nscn/bin/stage1-nspawn.aci
export NSCN_STAGE1_FLY_ACI=/nscn/bin/stage1-fly.aci
export NSCN_IMAGES=/nscn/images
export HOME=/root TMPDIR=/tmp LC_ALL=C
mkdir -p /root
for s in /test/*.sh; do
	[ -f "$s" ] || continue
	name=${s##*/}
	name=${name%.sh}
	echo "@@nscn-vm begin $name"
	(cd / && exec sh "$s") </dev/null 2>&1
	rc=$?
	# The newline ends an output that did not end in one; the harness
	# drops it.
	echo
	echo "@@nscn-vm end $name status=$rc"
	if [ "$rc" -ne 0 ]; then
		say "kernel log tail after $name:"
		dmesg | tail -n 30
	fi
done
say "scripts done after $(cut -d' ' -f1 /proc/uptime)s"
echo "@@nscn-vm done"
sync
poweroff -f
# poweroff -f does not return; if it did, panic=-1 and -no-reboot end
# the VM when this PID 1 exits.
sleep 5
exit 1
