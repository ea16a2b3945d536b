/*
 * Architectures: a preset plus its sizes expands to a flat list of layers
 * named and laid out as PyTorch's nn.Sequential modules would be
 * ("encoder.0.weight", ...), so parameters move to and from PyTorch as is.
 *
 * A model owns two flat blocks: `params` (everything the optimiser trains,
 * carved by offsets) and `state` (batch-norm running statistics).
 */
#ifndef AE_NET_H
#define AE_NET_H

#include <stddef.h>
#include <stdint.h>

#include "ae/error.h"
#include "ae/noise.h"
#include "ae/transform.h"

#define AE_MAX_LAYERS 24
/* What an architecture may ask for, checked by ae_net_build (the one
 * place), and what fixed-size scratch in the kernels is sized by. */
#define AE_MAX_SIDE    1024 /* image height and width */
#define AE_MAX_FILTERS 1024 /* conv channels, each of f1 and f2 */
#define AE_MAX_LATENT  65536
#define AE_MAX_HIDDEN  65536
/* Threads one trainer or inference context may run on; callers that
 * default to one per core clamp to it. */
#define AE_MAX_THREADS 64
/* Images one trainer or inference context is sized for (max_batch). */
#define AE_MAX_BATCH 65536
#define AE_NONE      ((size_t)-1)
/* Batch norm's epsilon (PyTorch's default), for training, inference,
 * ae.arch and the exporters alike. */
#define AE_BN_EPS 1e-5f

enum {
	AE_L_CONV,
	AE_L_CONVT,
	AE_L_DENSE,
	AE_L_RELU,
	AE_L_LRELU,
	AE_L_SIGMOID,
	AE_L_BN,
	AE_L_FLATTEN,
	AE_L_UNFLATTEN,
};

/* Inference precisions (ae/infer.h: a plan runs one; the model file keeps
 * what each needs: activation ranges, thresholds). */
enum { AE_PREC_FP32, AE_PREC_BF16, AE_PREC_INT8, AE_PREC_COUNT };

typedef struct ae_arch_spec {
	char preset[16]; /* "conv" or "dense" */
	int c, h, w;     /* input channels (1 or 3) and size (conv: multiples of 4) */
	/* The image the decoder gives, by the same rules; 0: the input's (an
	 * autoencoder). Another shape makes an image-to-image model whose
	 * answer differs from what it is given (gray to colour, small to
	 * large). ae_net_build fills in the zeros. */
	int out_c, out_h, out_w;
	int latent;  /* code size */
	int f1, f2;  /* conv: filters of the two stages (32, 64) */
	int hidden;  /* dense: hidden units (128) */
	float slope; /* LeakyReLU negative slope (0.2) */
} ae_arch_spec;

typedef struct ae_layer {
	int kind;
	char name[16];            /* PyTorch module path: "encoder.0" */
	int ic, ih, iw;           /* input shape (dense: ic = features, ih = iw = 1) */
	int oc, oh, ow;           /* output shape */
	int k, stride, pad, opad; /* conv/convt */
	float slope;              /* lrelu */
	size_t w, wn, b, bn;      /* params offsets/sizes (BN: gamma, beta) or AE_NONE */
	size_t rm, rv;            /* state offsets (BN running mean/var) or AE_NONE */
} ae_layer;

typedef struct ae_net {
	ae_arch_spec spec;
	int n_layers;
	int n_enc; /* layers[0, n_enc) are the encoder */
	ae_layer layers[AE_MAX_LAYERS];
	size_t n_params, n_state;
} ae_net;

/* Fills spec with the defaults of a preset ("conv" or "dense"). */
int ae_arch_defaults(ae_arch_spec *spec, const char *preset, ae_error *err);
/* Whether spec can be built: sizes, channels, widths; the error says what
 * is wrong and, for a size, which sizes work. */
int ae_arch_validate(const ae_arch_spec *spec, ae_error *err);
/* Whether spec gives back an image of its input's shape, as training
 * against its own input, reconstruction errors and anomaly scores need:
 * AE_OK, or AE_ERR_INVAL naming both shapes. */
int ae_arch_check_autoencoder(const ae_arch_spec *spec, ae_error *err);
/* Validates spec and expands it into net. */
int ae_net_build(ae_net *net, const ae_arch_spec *spec, ae_error *err);

static inline size_t ae_layer_out_size(const ae_layer *l)
{
	return (size_t)l->oc * l->oh * l->ow;
}
static inline size_t ae_net_input_size(const ae_net *n)
{
	return (size_t)n->spec.c * n->spec.h * n->spec.w;
}
static inline size_t ae_net_output_size(const ae_net *n)
{
	return (size_t)n->spec.out_c * n->spec.out_h * n->spec.out_w;
}

/* ---- Models ---- */

#define AE_MAX_QUANTILES 128

typedef struct ae_train_info {
	char dataset[2048];
	char classes[256];    /* the classes trained on ("1", "0,2"); "" for all */
	char contaminate[32]; /* another class mixed in, "CLASS:SHARE"; "" for none */
	char resize[24];      /* the images resampled to "HxW" (aetrain --resize); "" for none */
	char loss[8];
	long samples, val_samples;
	int epochs, batch, threads;
	double lr;
	uint64_t seed;
	double train_loss, val_loss;
	double seconds;
	char date[32];
} ae_train_info;

/* A score's calibration on held-out images (ae/scores.h). */
#define AE_N_SCORES         5
#define AE_LATENT_STATS_MAX 256 /* codes longer than this get no latent score */
typedef struct ae_score_cal {
	int present;
	double mean, std;
	int n_quant;
	double qp[AE_MAX_QUANTILES], qv[AE_MAX_QUANTILES];
} ae_score_cal;

typedef struct ae_model {
	ae_net net;
	float *params;          /* n_params, owned */
	float *state;           /* n_state, owned */
	int64_t bn_batches;     /* PyTorch's num_batches_tracked */
	char task[16];          /* "reconstruct" or "denoise" */
	ae_noise noise;         /* corruption used in training */
	ae_transform transform; /* what the model is given, of what it must produce (ae/transform.h) */
	ae_train_info train;
	int n_quant; /* held-out per-image MSE quantiles */
	double qp[AE_MAX_QUANTILES], qv[AE_MAX_QUANTILES];
	/* Every score's calibration (ae/scores.h), and the Gaussian of the
	 * training codes (latent_mean: latent; latent_prec: latent x latent),
	 * owned; absent (present 0, NULL) in files from before them. */
	ae_score_cal cal[AE_N_SCORES];
	double *latent_mean, *latent_prec;
	/* int8 codes' scale per dimension (ae/codes.h), from the training codes;
	 * owned, NULL in files from before it. */
	float *code_scale;
	int default_score;
	/* Reduced precision (ae/infer.h), absent (present 0) in files from
	 * before it: the range of the values each linear layer reads (by
	 * layer index), over held-out images, which int8's activation scales
	 * come from; and each reduced precision's own anomaly calibration
	 * (prec_cal[AE_PREC_FP32] stays empty: cal is fp32's). */
	struct {
		int present;
		long images;
		float lo[AE_MAX_LAYERS], hi[AE_MAX_LAYERS];
	} act_range;
	ae_score_cal prec_cal[AE_PREC_COUNT][AE_N_SCORES];
	char checksum[24]; /* "crc32:xxxxxxxx" of the tensor bytes, set on save/load */
} ae_model;

/* Allocates a model for spec with PyTorch's default initialisation drawn
 * from seed. Returns NULL and fills err on failure. Free with ae_model_free. */
ae_model *ae_model_new(const ae_arch_spec *spec, uint64_t seed, ae_error *err);
void ae_model_free(ae_model *m);

/* "fp32", "bf16" or "int8". */
const char *ae_precision_name(int prec);
/* Makes prec's anomaly calibration (ae.precision in the file) the one m
 * scores with: its score tables and its MSE quantiles. Returns 1 if m had
 * one for prec, 0 if it keeps what it has (fp32's). For a model loaded to
 * run at prec, before any scoring. */
int ae_model_use_precision(ae_model *m, int prec);

/* "none", "gaussian:MEAN:STD", "saltpepper:P" */

/* Percentile (0..100) of a score in the model's held-out error distribution;
 * the score at quantile q (0..1). Both interpolate the stored table. */
double ae_model_percentile(const ae_model *m, double score);
double ae_model_quantile(const ae_model *m, double q);

#endif
