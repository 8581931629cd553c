# scripts/deps.sh - sourced by scripts/run and scripts/test: installs what the
# build and the tests need from Debian's archive when it is missing, and costs
# one dpkg query when everything is there.
# shellcheck shell=bash

BLOBFS_PACKAGES="gcc meson ninja-build pkg-config libfuse3-dev fuse3 libssl-dev libzstd-dev libcurl4-openssl-dev libxml2-dev libmicrohttpd-dev python3-pytest python3-boto3 s3cmd rsync cpio attr chromium"

blobfs_install_deps() {
	local missing=() pkg
	for pkg in $BLOBFS_PACKAGES "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
			missing+=("$pkg")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}" >&2
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq >&2 || true
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

# Configures (once) and builds a build directory: blobfs_build DIR [meson options]
blobfs_build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
}
