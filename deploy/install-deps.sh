#!/usr/bin/env bash
# Installs what building, testing and serving need on Debian 12 (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential pkg-config ca-certificates \
	libopenblas-dev libmicrohttpd-dev libjansson-dev libpng-dev zlib1g-dev \
	curl jq valgrind clang libclang-rt-14-dev \
	clang-format clang-tidy cppcheck shellcheck bear groff-base >/dev/null
# Node.js runs only the OpenAPI checks in the tests; keep a newer one if present.
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
