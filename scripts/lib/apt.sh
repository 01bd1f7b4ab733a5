# shellcheck shell=bash
# apt_install_missing NAME PACKAGE...: installs, with apt-get, those of the
# Debian packages that are not installed yet. Idempotent: packages already
# present are not downloaded again; with all present nothing runs and no
# root is needed. NAME prefixes the messages. Sourced by the install-*
# scripts.
apt_install_missing() {
	local name=$1
	shift
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
			missing+=("$p")
		fi
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		echo "$name: all packages present"
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "$name: need root to install: ${missing[*]}" >&2
		return 1
	fi
	echo "$name: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
