/*
 * Fault injection on model files and checkpoints: a small file cut at every
 * length, and with one bit flipped at every byte, must be refused with a
 * message naming the problem, never loaded as something else and never a
 * crash (this runs under ASan in `make sanitize`). Then a disk that fills
 * while a model or checkpoint is written: the write fails with a message
 * and the previous file is left whole.
 */
#include "test.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ae/fileio.h"
#include "ae/modelfile.h"

#define PATH "build-test-faults.safetensors"

static ae_model *tiny_model(void)
{
	ae_arch_spec s;
	ae_arch_defaults(&s, "dense", NULL);
	s.h = s.w = 6, s.hidden = 4, s.latent = 2;
	ae_model *m = ae_model_new(&s, 7, NULL);
	snprintf(m->train.dataset, sizeof m->train.dataset, "data/mnist");
	m->train.epochs = 20;
	m->n_quant = 3;
	m->qp[0] = 0, m->qp[1] = 0.5, m->qp[2] = 1;
	m->qv[0] = 0.01, m->qv[1] = 0.02, m->qv[2] = 0.05;
	return m;
}

/* Loads a copy of buf[0, len); returns 0 when it loads. */
static int load_bytes(const uint8_t *buf, size_t len, char *msg, size_t cap)
{
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, buf, len);
	ae_st st;
	ae_error err = { 0 };
	ae_model *m = NULL;
	if (ae_st_parse(&st, copy, len, &err) == AE_OK) m = ae_model_from_st(&st, NULL, &err);
	ae_st_free(&st);
	snprintf(msg, cap, "%s", err.msg);
	ae_model_free(m);
	return m ? 0 : -1;
}

static void test_truncated_and_flipped(void)
{
	ae_model *m = tiny_model();
	ae_error err = { 0 };
	CHECK(ae_model_save(m, PATH, NULL, 0, NULL, NULL, &err) == 0);
	ae_model_free(m);
	uint8_t *buf;
	size_t len;
	CHECK(ae_read_file(PATH, 1 << 20, &buf, &len, &err) == 0);
	char msg[512];
	CHECK(load_bytes(buf, len, msg, sizeof msg) == 0);

	int cut_ok = 0, cut_silent = 0;
	for (size_t n = 0; n < len; n++) {
		if (load_bytes(buf, n, msg, sizeof msg) == 0)
			fprintf(stderr, "cut at %zu of %zu loaded\n", n, len);
		else if (!msg[0])
			cut_silent++;
		else
			cut_ok++;
	}
	CHECK_MSG(cut_ok == (int)len, "%d of %zu cuts refused with a message (%d without one)", cut_ok, len,
	          cut_silent);

	int flip_ok = 0, flip_loaded = 0;
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= (uint8_t)(1u << (i % 8));
		if (load_bytes(buf, len, msg, sizeof msg) == 0) {
			if (flip_loaded++ < 10)
				fprintf(stderr, "bit %zu of byte %zu flipped: loaded (context '%.24s')\n", i % 8, i,
				        (const char *)buf + (i > 12 ? i - 12 : 0));
		} else if (msg[0])
			flip_ok++;
		buf[i] ^= (uint8_t)(1u << (i % 8));
	}
	CHECK_MSG(flip_ok == (int)len, "%d of %zu bit flips refused with a message (%d loaded)", flip_ok, len,
	          flip_loaded);
	printf("model file of %zu bytes: %d truncations and %d bit flips tried, all refused with a message\n", len,
	       cut_ok + cut_silent, flip_ok + flip_loaded);
	free(buf);
}

/* A file-size limit stands in for a full disk: writes past it fail with
 * EFBIG (SIGXFSZ is ignored, as a server's or trainer's would be). */
static void test_disk_full(void)
{
	ae_model *m = tiny_model();
	ae_error err = { 0 };
	CHECK(ae_model_save(m, PATH, NULL, 0, NULL, NULL, &err) == 0);
	uint8_t *before;
	size_t blen;
	ae_read_file(PATH, 1 << 20, &before, &blen, &err);
	m->train.epochs = 99; /* a different file, if it were written */
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 1000;
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &lim);
	int rc = ae_model_save(m, PATH, NULL, 0, NULL, NULL, &err);
	setrlimit(RLIMIT_FSIZE, &old);
	CHECK_ERR(rc, err, "write failed");
	uint8_t *after;
	size_t alen;
	ae_read_file(PATH, 1 << 20, &after, &alen, &err);
	CHECK_MSG(alen == blen && memcmp(before, after, blen) == 0, "the previous file changed (%zu -> %zu bytes)",
	          blen, alen);
	/* and no temporary is left beside it */
	char cmd[256];
	snprintf(cmd, sizeof cmd, "ls %s.tmp* >/dev/null 2>&1", PATH);
	CHECK(system(cmd) != 0);
	free(before), free(after);
	ae_model_free(m);
	remove(PATH);
}

int main(void)
{
	test_truncated_and_flipped();
	test_disk_full();
	remove(PATH);
	return TEST_DONE();
}
