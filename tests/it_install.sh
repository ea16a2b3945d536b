#!/usr/bin/env bash
# make install as a packager runs it (into a DESTDIR), then a small program
# built against the installed libae with nothing but pkg-config: it loads a
# shipped model, encodes and reconstructs a digit, and prints the error.
# The man pages render, and both programs report the one version.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
ROOT="$TMPD/root"
PREFIX=/usr/local
make -s install BUILD="$BUILD" DESTDIR="$ROOT" PREFIX=$PREFIX >"$TMPD/install.log" 2>&1
rc=$?
check "make install DESTDIR=... succeeds (rc $rc: $(tail -1 "$TMPD/install.log"))" test "$rc" -eq 0
for f in bin/aetrain bin/aeserve lib/libae.a lib/pkgconfig/ae.pc include/ae/infer.h include/ae/modelfile.h \
	share/man/man1/aeserve.1 share/man/man1/aetrain.1 share/aeserve/models/mnist.safetensors; do
	check "installed $PREFIX/$f" test -s "$ROOT$PREFIX/$f"
done
# The public headers are exactly include/ae/'s; the engine's internal ones
# (core/*.h) are not among them.
check "the installed headers are include/ae/'s, no more, no fewer" \
	test "$(cd "$ROOT$PREFIX/include/ae" && ls)" = "$(cd include/ae && ls)"

version=$(sed -n 's/^#define AE_VERSION "\(.*\)"/\1/p' include/ae/version.h)
check "aeserve --version says $version" bash -c "[[ \"\$('$ROOT$PREFIX/bin/aeserve' --version)\" == 'aeserve $version ('* ]]"
check "aetrain --version says $version" bash -c "[[ \"\$('$ROOT$PREFIX/bin/aetrain' --version)\" == 'aetrain $version ('* ]]"
export PKG_CONFIG_PATH="$ROOT$PREFIX/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$ROOT"
check "pkg-config knows ae $version" bash -c "[ \"\$(pkg-config --modversion ae)\" = '$version' ]"
for m in aeserve aetrain; do
	check "man page $m(1) renders" bash -c "nroff -man '$ROOT$PREFIX/share/man/man1/$m.1' 2>&1 | grep -q '$m $version'"
done

cat > "$TMPD/use.c" <<'EOF'
/* A program of a libae user: load a model, encode and reconstruct an image. */
#include <stdio.h>
#include <stdlib.h>

#include <ae/dataset.h>
#include <ae/infer.h>
#include <ae/modelfile.h>
#include <ae/stats.h>

int main(int argc, char **argv)
{
	ae_error err = { 0 };
	ae_model *m = argc == 3 ? ae_model_load(argv[1], &err) : NULL;
	ae_plan *p = m ? ae_plan_new(m, &err) : NULL;
	ae_infer *w = p ? ae_infer_new(p, 1, 1, &err) : NULL;
	ae_dataset ds = { 0 };
	if (!w || ae_dataset_load(&ds, argv[2], "test", 1, &err)) {
		fprintf(stderr, "use: %s\n", err.msg);
		return 1;
	}
	size_t in = ae_plan_in_size(p, AE_OP_RECONSTRUCT), code = ae_plan_out_size(p, AE_OP_ENCODE);
	float *x = malloc(in * sizeof *x), *y = malloc(in * sizeof *y), *z = malloc(code * sizeof *z);
	int first = 0;
	double mse;
	ae_dataset_batch(&ds, &first, 1, x);
	ae_infer_run(w, AE_OP_ENCODE, x, 1, z);
	ae_infer_run(w, AE_OP_RECONSTRUCT, x, 1, y);
	ae_mse_per_image(&mse, y, x, 1, in);
	printf("latent %zu, mse %.4f\n", code, mse);
	free(x), free(y), free(z);
	ae_dataset_free(&ds);
	ae_infer_free(w);
	ae_plan_free(p);
	ae_model_free(m);
	return 0;
}
EOF
# The sanitized build's library needs its runtime in the program too.
SAN=(); [ "$SANITIZED" = 1 ] && SAN=("-fsanitize=address,undefined")
# shellcheck disable=SC2046 # pkg-config prints words meant to be split
cc -std=c11 -Wall -Wextra -Werror "${SAN[@]}" -o "$TMPD/use" "$TMPD/use.c" $(pkg-config --cflags ae) \
	$(pkg-config --static --libs ae) 2>"$TMPD/cc.log"
check "a program builds against the installed libae with pkg-config ($(head -c 200 "$TMPD/cc.log"))" test -x "$TMPD/use"
out=$("$TMPD/use" "$ROOT$PREFIX/share/aeserve/models/mnist.safetensors" tests/fixtures/digits 2>&1)
echo "installed libae, a user's program: $out"
check "and runs: encodes to 16 values, reconstructs within MSE 0.05" \
	awk -v o="$out" 'BEGIN { split(o, f, /[ ,]+/); exit !(f[2] == 16 && f[4] < 0.05) }'
done_tests
