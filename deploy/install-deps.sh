#!/usr/bin/env bash
# Installs what building, testing and serving need on Debian 12 (run as root).
# chromium is for the playground's browser test only (driven headless);
# Open MPI (openmpi-bin, libopenmpi-dev) builds and tests aetrain-mpi.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential pkg-config ca-certificates \
	libopenblas-dev libmicrohttpd-dev libjansson-dev libpng-dev zlib1g-dev \
	curl jq valgrind clang libclang-rt-14-dev \
	clang-format clang-tidy cppcheck shellcheck bear groff-base \
	gnutls-bin nginx systemd chromium openmpi-bin libopenmpi-dev >/dev/null
# The deploy/ tests run nginx from their own configuration: the packaged
# server, if the package started one, is not needed.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
# `make image-test` only: podman and mmdebstrap build and run the container image.
if [ "${AE_IMAGE_DEPS:-0}" = 1 ]; then
	apt-get install -y -qq --no-install-recommends podman mmdebstrap uidmap >/dev/null
fi
# The ONNX test's reference checks (tests/it_onnx.sh; skipped, and counted,
# without them): onnx.checker, and the PyTorch module of tools/python
# against our engine. About 60 MB for python3-torch and what it brings;
# its 15 packages downloaded in 5 s and unpacked in 12 s on a 2-core host.
apt-get install -y -qq --no-install-recommends python3-onnx python3-torch >/dev/null
# Node.js runs only tests: OpenAPI, manifests, the browser and ONNX Runtime; keep a newer one if present.
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
