/*
 * ONNX export: a model's networks as ONNX files that ONNX Runtime, Triton's
 * ONNX backend, OpenVINO, TensorRT and onnxruntime-web load. Written from
 * the layer list (ae/net.h), so any architecture built of our layer kinds
 * exports without a change here. docs/onnx.md describes the graphs.
 *
 *   encoder.onnx      "input"  float32 [N,C,H,W] -> "latent" [N,L]
 *   decoder.onnx      "latent" [N,L]             -> "reconstruction" [N,C,H,W]
 *   autoencoder.onnx  "input" -> "latent", "reconstruction"
 *
 * (a code that is a map rather than a vector is [N,C',H',W']). The batch N
 * is dynamic; tensor names are those of aeserve's Open Inference Protocol
 * answers, so a client moves between aeserve and Triton unchanged. Batch
 * norm is kept as BatchNormalization nodes with the file's own tensors;
 * the model file's metadata travels as the ONNX model's metadata_props.
 */
#ifndef AE_ONNX_H
#define AE_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "ae/error.h"
#include "ae/net.h"

/* The operator set the graphs declare: every op they use (Conv,
 * ConvTranspose, Gemm, BatchNormalization, Relu, LeakyRelu, Sigmoid,
 * Flatten, Reshape) has its current meaning there, and ONNX Runtime from
 * 1.6 on reads it. IR version 7 is the one that came with opset 13. */
#define AE_ONNX_OPSET      13
#define AE_ONNX_IR_VERSION 7
/* A file larger than this is refused before it is built: protobuf cannot
 * parse a message of 2 GiB or more, and the graph and metadata take at
 * most a few MiB beside the weights. */
#define AE_ONNX_MAX_BYTES ((size_t)2047 << 20)

typedef enum ae_onnx_part { AE_ONNX_ENCODER, AE_ONNX_DECODER, AE_ONNX_AUTOENCODER, AE_ONNX_PARTS } ae_onnx_part;

/* One input or output of a graph: its dims, batch first (-1, dynamic). */
typedef struct ae_onnx_value {
	const char *name; /* static: "input", "latent", "reconstruction" */
	int rank;
	int64_t d[4];
} ae_onnx_value;

typedef struct ae_onnx_sig {
	int n_in, n_out;
	ae_onnx_value in[1], out[2];
} ae_onnx_sig;

/* "encoder", "decoder", "autoencoder": also the file's base name. */
const char *ae_onnx_part_name(ae_onnx_part part);

/* What part's graph takes and gives, for a Triton configuration or a
 * client. Fails (err says which layer) for a layer list it cannot
 * express. */
int ae_onnx_signature(const ae_net *net, ae_onnx_part part, ae_onnx_sig *sig, ae_error *err);

/* The ONNX ModelProto of part of m (borrowed) into *out (malloc'd, the
 * caller frees) of *len bytes. */
int ae_onnx_encode(const ae_model *m, ae_onnx_part part, uint8_t **out, size_t *len, ae_error *err);

/* The same, written atomically to path. */
int ae_onnx_write(const ae_model *m, ae_onnx_part part, const char *path, ae_error *err);

#endif
