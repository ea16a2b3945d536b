/*
 * IDX files (the MNIST container), raw or gzip, as aetrain reads a data
 * set: through a file, since the reader takes a path (zlib's gz reader
 * handles both forms).
 */
#include "fuzz.h"

#include <unistd.h>

#include "ae/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	if (!path[0]) snprintf(path, sizeof path, "/tmp/ae-fuzz-idx-%d", (int)getpid());
	FILE *f = fopen(path, "wb");
	if (!f) return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	uint8_t *out = NULL;
	int ndim, dims[3];
	if (ae_idx_read(path, &out, &ndim, dims, NULL) == AE_OK) free(out);
	return 0;
}
