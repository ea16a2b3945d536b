/*
 * Model files: safetensors whose tensors carry PyTorch's state_dict names and
 * whose __metadata__ carries our facts (see docs/model-format.md).
 */
#ifndef AE_MODELFILE_H
#define AE_MODELFILE_H

#include "ae/net.h"
#include "ae/safetensors.h"

/* Written by this build; 1 (checksum over the tensors only) is still read. */
#define AE_FORMAT_VERSION "2"
/* Metadata entries a model file may carry (ours are 8, 9 in a checkpoint). */
#define AE_MAX_META 32

/* A tensor stored beside the model's own (a checkpoint's optimiser state). */
typedef struct ae_extra_tensor {
	const char *name;
	int dtype, ndim;
	int64_t shape[AE_ST_MAX_DIMS];
	const void *data;
} ae_extra_tensor;

/* Writes m atomically to path; extra tensors and metadata (may be NULL/0)
 * are stored too. Sets m->checksum. */
int ae_model_save(ae_model *m, const char *path, const ae_extra_tensor *extra, int n_extra, const char *extra_key,
                  const char *extra_value, ae_error *err);

/* Loads and validates a model file. NULL + err (naming the file) on failure. */
ae_model *ae_model_load(const char *path, ae_error *err);

/* Validates a parsed file and builds the model from it. Tensors whose names
 * start with extra_prefix (may be NULL) are tolerated and left in st. */
ae_model *ae_model_from_st(const ae_st *st, const char *extra_prefix, ae_error *err);

/* The metadata a file of a model holds (docs/model-format.md): keys and
 * values in the order written, ae.meta_crc last, ae.checksum the model's
 * (m->checksum, set when it was loaded or saved). Values point into mm
 * or m: m must outlive mm. Release with ae_model_meta_deinit. */
typedef struct ae_model_meta {
	int n;
	const char *key[AE_MAX_META];
	const char *value[AE_MAX_META];
	char *owned[5]; /* ae.arch, ae.train, ae.errors, ae.scores, ae.precision texts */
	char input[48], latent[24], noise[64], transform[32], meta_crc[24];
} ae_model_meta;

int ae_model_meta_init(ae_model_meta *mm, const ae_model *m, ae_error *err);
void ae_model_meta_deinit(ae_model_meta *mm);

/* The architecture as JSON text (caller frees), as stored in ae.arch. */
char *ae_arch_to_json(const ae_net *net);

#endif
