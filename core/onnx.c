/*
 * ONNX export (ae/onnx.h): a ModelProto written field by field with the
 * wire-format writer of pb.h. Each layer of the list becomes one node of
 * the operator it is in PyTorch's own export, with the model's tensors as
 * initializers under their state_dict names, so that the graph reads as
 * the model file does and every weight is the file's, byte for byte.
 *
 * Batch norm is kept as BatchNormalization. In our presets it follows an
 * activation, where no one can fold it into a weight exactly (at a
 * zero-padded border the shift would have to be folded into the padding);
 * where one ever follows a convolution directly, every runtime's optimiser
 * folds it at load (ONNX Runtime's Conv+BatchNormalization fusion, among
 * its basic optimisations), so folding it here would only hide the
 * model's own tensors.
 *
 * Field numbers are those of onnx.proto (ONNX 1.12; Debian's python3-onnx
 * installs it as /usr/lib/python3/dist-packages/onnx/onnx.proto).
 */
#include "ae/onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/fileio.h"
#include "ae/modelfile.h"
#include "ae/version.h"
#include "pb.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "TensorProto.raw_data is little-endian; this file assumes the host is too"
#endif

/* onnx.proto's field numbers (message.field = number) and enum values. */
enum {
	MODEL_IR_VERSION = 1,       /* ModelProto.ir_version */
	MODEL_PRODUCER_NAME = 2,    /* ModelProto.producer_name */
	MODEL_PRODUCER_VERSION = 3, /* ModelProto.producer_version */
	MODEL_DOC_STRING = 6,       /* ModelProto.doc_string */
	MODEL_GRAPH = 7,            /* ModelProto.graph */
	MODEL_OPSET_IMPORT = 8,     /* ModelProto.opset_import */
	MODEL_METADATA_PROPS = 14,  /* ModelProto.metadata_props */
	OPSET_VERSION = 2,          /* OperatorSetIdProto.version (domain 1 left out: "" is ai.onnx) */
	ENTRY_KEY = 1,              /* StringStringEntryProto.key */
	ENTRY_VALUE = 2,            /* StringStringEntryProto.value */
	GRAPH_NODE = 1,             /* GraphProto.node */
	GRAPH_NAME = 2,             /* GraphProto.name */
	GRAPH_INITIALIZER = 5,      /* GraphProto.initializer */
	GRAPH_DOC_STRING = 10,      /* GraphProto.doc_string */
	GRAPH_INPUT = 11,           /* GraphProto.input */
	GRAPH_OUTPUT = 12,          /* GraphProto.output */
	NODE_INPUT = 1,             /* NodeProto.input */
	NODE_OUTPUT = 2,            /* NodeProto.output */
	NODE_NAME = 3,              /* NodeProto.name */
	NODE_OP_TYPE = 4,           /* NodeProto.op_type */
	NODE_ATTRIBUTE = 5,         /* NodeProto.attribute */
	ATTR_NAME = 1,              /* AttributeProto.name */
	ATTR_F = 2,                 /* AttributeProto.f */
	ATTR_I = 3,                 /* AttributeProto.i */
	ATTR_INTS = 8,              /* AttributeProto.ints */
	ATTR_TYPE = 20,             /* AttributeProto.type */
	ATTR_TYPE_FLOAT = 1,        /* AttributeProto.AttributeType.FLOAT */
	ATTR_TYPE_INT = 2,          /* AttributeProto.AttributeType.INT */
	ATTR_TYPE_INTS = 7,         /* AttributeProto.AttributeType.INTS */
	TENSOR_DIMS = 1,            /* TensorProto.dims */
	TENSOR_DATA_TYPE = 2,       /* TensorProto.data_type */
	TENSOR_NAME = 8,            /* TensorProto.name */
	TENSOR_RAW_DATA = 9,        /* TensorProto.raw_data */
	DT_FLOAT = 1,               /* TensorProto.DataType.FLOAT */
	DT_INT64 = 7,               /* TensorProto.DataType.INT64 */
	VALUE_NAME = 1,             /* ValueInfoProto.name */
	VALUE_TYPE = 2,             /* ValueInfoProto.type */
	TYPE_TENSOR_TYPE = 1,       /* TypeProto.tensor_type */
	TENSOR_ELEM_TYPE = 1,       /* TypeProto.Tensor.elem_type */
	TENSOR_SHAPE = 2,           /* TypeProto.Tensor.shape */
	SHAPE_DIM = 1,              /* TensorShapeProto.dim */
	DIM_VALUE = 1,              /* TensorShapeProto.Dimension.dim_value */
	DIM_PARAM = 2,              /* TensorShapeProto.Dimension.dim_param */
};

const char *ae_onnx_part_name(ae_onnx_part part)
{
	static const char *const names[] = { "encoder", "decoder", "autoencoder" };
	return part >= 0 && part < AE_ONNX_PARTS ? names[part] : "?";
}

/* ------------------------------------------------------------- the graph */

/* Layers [*first, *end) of the net are part's. */
static void part_range(const ae_net *net, ae_onnx_part part, int *first, int *end)
{
	*first = part == AE_ONNX_DECODER ? net->n_enc : 0;
	*end = part == AE_ONNX_ENCODER ? net->n_enc : net->n_layers;
}

/* The rank (batch included) of each layer's output into r, checking that
 * each layer gets the rank its operator takes. */
static int layer_ranks(const ae_net *net, int *r, ae_error *err)
{
	if (net->n_enc < 1 || net->n_enc >= net->n_layers)
		return ae_fail(err, AE_ERR_INVAL, "the network has no encoder and decoder to export");
	int rank = 4;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		int want = 0; /* the rank the layer takes; 0: any */
		switch (l->kind) {
		case AE_L_CONV:
		case AE_L_CONVT:
		case AE_L_BN:
		case AE_L_FLATTEN: want = 4; break;
		case AE_L_DENSE:
		case AE_L_UNFLATTEN: want = 2; break;
		case AE_L_RELU:
		case AE_L_LRELU:
		case AE_L_SIGMOID: break;
		default: return ae_fail(err, AE_ERR_INVAL, "%s: a layer of kind %d has no ONNX form", l->name, l->kind);
		}
		if (want && rank != want)
			return ae_fail(err, AE_ERR_INVAL, "%s: takes a tensor of rank %d, gets one of rank %d", l->name,
			               want, rank);
		if (l->kind == AE_L_FLATTEN) rank = 2;
		if (l->kind == AE_L_UNFLATTEN) rank = 4;
		r[i] = rank;
	}
	return r[net->n_layers - 1] == 4 ? AE_OK : ae_fail(err, AE_ERR_INVAL, "the decoder does not end in an image");
}

/* The name of layer i's output: the graph's own names for the code and
 * the image, the layer's module path for the values between. */
static const char *value_name(const ae_net *net, int i)
{
	if (i < 0) return "input";
	if (i == net->n_enc - 1) return "latent";
	if (i == net->n_layers - 1) return "reconstruction";
	return net->layers[i].name;
}

/* Layer i's output (i = -1: the network's input) as a graph value. */
static ae_onnx_value layer_value(const ae_net *net, const int *rank, int i)
{
	const ae_layer *l = &net->layers[i < 0 ? 0 : i];
	ae_onnx_value v = { .name = value_name(net, i), .rank = i < 0 ? 4 : rank[i], .d = { -1 } };
	if (i < 0) {
		v.d[1] = l->ic, v.d[2] = l->ih, v.d[3] = l->iw;
	} else {
		v.d[1] = l->oc;
		if (v.rank == 4) v.d[2] = l->oh, v.d[3] = l->ow;
	}
	return v;
}

int ae_onnx_signature(const ae_net *net, ae_onnx_part part, ae_onnx_sig *sig, ae_error *err)
{
	int rank[AE_MAX_LAYERS];
	memset(sig, 0, sizeof *sig);
	if (part < 0 || part >= AE_ONNX_PARTS) return ae_fail(err, AE_ERR_INVAL, "unknown part %d", (int)part);
	int rc = layer_ranks(net, rank, err);
	if (rc) return rc;
	const int code = net->n_enc - 1, image = net->n_layers - 1;
	sig->n_in = 1;
	sig->in[0] = layer_value(net, rank, part == AE_ONNX_DECODER ? code : -1);
	if (part != AE_ONNX_DECODER) sig->out[sig->n_out++] = layer_value(net, rank, code);
	if (part != AE_ONNX_ENCODER) sig->out[sig->n_out++] = layer_value(net, rank, image);
	return AE_OK;
}

/* ------------------------------------------------------------ the nodes */

/* An AttributeProto named name of type type in a; attr_close appends it
 * to the node once its value is in. */
static void attr_open(ae_pb *a, const char *name, int type)
{
	ae_pb_init(a);
	ae_pb_str(a, ATTR_NAME, name);
	ae_pb_int(a, ATTR_TYPE, type);
}

static void attr_close(ae_pb *node, ae_pb *a)
{
	ae_pb_msg(node, NODE_ATTRIBUTE, a);
	ae_pb_deinit(a);
}

static void attr_ints(ae_pb *node, const char *name, const int64_t *v, int n)
{
	ae_pb a;
	attr_open(&a, name, ATTR_TYPE_INTS);
	ae_pb_ints(&a, ATTR_INTS, v, n);
	attr_close(node, &a);
}

static void attr_int(ae_pb *node, const char *name, int64_t v)
{
	ae_pb a;
	attr_open(&a, name, ATTR_TYPE_INT);
	ae_pb_int(&a, ATTR_I, v);
	attr_close(node, &a);
}

static void attr_float(ae_pb *node, const char *name, float v)
{
	ae_pb a;
	attr_open(&a, name, ATTR_TYPE_FLOAT);
	ae_pb_float(&a, ATTR_F, v);
	attr_close(node, &a);
}

/* A convolution's attributes, as PyTorch's export writes them. */
static void conv_attrs(ae_pb *n, const ae_layer *l)
{
	const int64_t k[2] = { l->k, l->k }, s[2] = { l->stride, l->stride }, d[2] = { 1, 1 };
	const int64_t p[4] = { l->pad, l->pad, l->pad, l->pad }, op[2] = { l->opad, l->opad };
	attr_ints(n, "dilations", d, 2);
	attr_int(n, "group", 1);
	attr_ints(n, "kernel_shape", k, 2);
	if (l->kind == AE_L_CONVT) attr_ints(n, "output_padding", op, 2);
	attr_ints(n, "pads", p, 4);
	attr_ints(n, "strides", s, 2);
}

/* Layer l, reading value `in` and writing value `out`, as one NodeProto
 * appended to nodes; its tensors are named as in the state_dict. */
static void layer_node(ae_pb *nodes, const ae_layer *l, const char *in, const char *out)
{
	static const char *const tensors[] = { "weight", "bias", "running_mean", "running_var" };
	static const char *const ops[] = { [AE_L_CONV] = "Conv",
		                           [AE_L_CONVT] = "ConvTranspose",
		                           [AE_L_DENSE] = "Gemm",
		                           [AE_L_RELU] = "Relu",
		                           [AE_L_LRELU] = "LeakyRelu",
		                           [AE_L_SIGMOID] = "Sigmoid",
		                           [AE_L_BN] = "BatchNormalization",
		                           [AE_L_FLATTEN] = "Flatten",
		                           [AE_L_UNFLATTEN] = "Reshape" };
	int n_tensors = l->kind == AE_L_BN ? 4 : l->w != AE_NONE ? 2 : 0;
	ae_pb n;
	char name[64];
	ae_pb_init(&n);
	ae_pb_str(&n, NODE_INPUT, in);
	for (int t = 0; t < n_tensors; t++) {
		snprintf(name, sizeof name, "%s.%s", l->name, tensors[t]);
		ae_pb_str(&n, NODE_INPUT, name);
	}
	if (l->kind == AE_L_UNFLATTEN) {
		snprintf(name, sizeof name, "%s.shape", l->name);
		ae_pb_str(&n, NODE_INPUT, name);
	}
	ae_pb_str(&n, NODE_OUTPUT, out);
	ae_pb_str(&n, NODE_NAME, l->name);
	ae_pb_str(&n, NODE_OP_TYPE, ops[l->kind]);
	switch (l->kind) {
	case AE_L_CONV:
	case AE_L_CONVT: conv_attrs(&n, l); break;
	/* y = x W^T + b: PyTorch's Linear, its weight as it is stored */
	case AE_L_DENSE: attr_int(&n, "transB", 1); break;
	case AE_L_LRELU: attr_float(&n, "alpha", l->slope); break;
	case AE_L_BN: attr_float(&n, "epsilon", AE_BN_EPS); break;
	case AE_L_FLATTEN: attr_int(&n, "axis", 1); break;
	default: break;
	}
	ae_pb_msg(nodes, GRAPH_NODE, &n);
	ae_pb_deinit(&n);
}

/* ----------------------------------------------------- the initializers */

/* One TensorProto appended to the graph g, its raw_data copied once. */
static void initializer(ae_pb *g, const char *name, int dtype, const int64_t *dims, int nd, const void *data,
                        size_t bytes)
{
	ae_pb t;
	ae_pb_init(&t);
	ae_pb_ints(&t, TENSOR_DIMS, dims, nd);
	ae_pb_int(&t, TENSOR_DATA_TYPE, dtype);
	ae_pb_str(&t, TENSOR_NAME, name);
	size_t raw = ae_pb_varint_size((uint64_t)TENSOR_RAW_DATA << 3) + ae_pb_varint_size(bytes) + bytes;
	if (t.failed) g->failed = 1;
	ae_pb_head(g, GRAPH_INITIALIZER, t.len + raw);
	ae_pb_put(g, t.p, t.len);
	ae_pb_bytes(g, TENSOR_RAW_DATA, data, bytes);
	ae_pb_deinit(&t);
}

/* Layer l's tensors, laid out as the model file's (modelfile.c). */
static void layer_initializers(ae_pb *g, const ae_model *m, const ae_layer *l)
{
	char name[64];
	const float *P = m->params;
	int64_t dims[4];
	int nd = 0;
	switch (l->kind) {
	case AE_L_CONV: dims[0] = l->oc, dims[1] = l->ic, dims[2] = dims[3] = l->k, nd = 4; break;
	case AE_L_CONVT: dims[0] = l->ic, dims[1] = l->oc, dims[2] = dims[3] = l->k, nd = 4; break;
	case AE_L_DENSE: dims[0] = l->oc, dims[1] = l->ic, nd = 2; break;
	case AE_L_BN: dims[0] = l->oc, nd = 1; break;
	case AE_L_UNFLATTEN: {
		/* 0: the batch, copied from the input (Reshape's rule for a 0
		 * without allowzero), so an empty batch reshapes too */
		const int64_t shape[4] = { 0, l->oc, l->oh, l->ow }, four = 4;
		snprintf(name, sizeof name, "%s.shape", l->name);
		initializer(g, name, DT_INT64, &four, 1, shape, sizeof shape);
		return;
	}
	default: return;
	}
	const int64_t c = l->oc;
	snprintf(name, sizeof name, "%s.weight", l->name);
	initializer(g, name, DT_FLOAT, dims, nd, P + l->w, l->wn * sizeof(float));
	snprintf(name, sizeof name, "%s.bias", l->name);
	initializer(g, name, DT_FLOAT, &c, 1, P + l->b, l->bn * sizeof(float));
	if (l->kind != AE_L_BN) return;
	snprintf(name, sizeof name, "%s.running_mean", l->name);
	initializer(g, name, DT_FLOAT, &c, 1, m->state + l->rm, (size_t)c * sizeof(float));
	snprintf(name, sizeof name, "%s.running_var", l->name);
	initializer(g, name, DT_FLOAT, &c, 1, m->state + l->rv, (size_t)c * sizeof(float));
}

/* Bytes of layer l's tensors. */
static size_t layer_bytes(const ae_layer *l)
{
	size_t n = l->w == AE_NONE ? 0 : l->wn + l->bn;
	if (l->kind == AE_L_BN) n += 2 * (size_t)l->oc;
	return n * sizeof(float);
}

/* ------------------------------------------------------------ the model */

/* A graph input or output: a float tensor, its batch named "batch". */
static void value_info(ae_pb *g, int field, const ae_onnx_value *v)
{
	ae_pb dim, shape, tensor, type, vi;
	ae_pb_init(&shape);
	for (int d = 0; d < v->rank; d++) {
		ae_pb_init(&dim);
		if (v->d[d] < 0)
			ae_pb_str(&dim, DIM_PARAM, "batch");
		else
			ae_pb_int(&dim, DIM_VALUE, v->d[d]);
		ae_pb_msg(&shape, SHAPE_DIM, &dim);
		ae_pb_deinit(&dim);
	}
	ae_pb_init(&tensor);
	ae_pb_int(&tensor, TENSOR_ELEM_TYPE, DT_FLOAT);
	ae_pb_msg(&tensor, TENSOR_SHAPE, &shape);
	ae_pb_init(&type);
	ae_pb_msg(&type, TYPE_TENSOR_TYPE, &tensor);
	ae_pb_init(&vi);
	ae_pb_str(&vi, VALUE_NAME, v->name);
	ae_pb_msg(&vi, VALUE_TYPE, &type);
	ae_pb_msg(g, field, &vi);
	ae_pb_deinit(&shape), ae_pb_deinit(&tensor), ae_pb_deinit(&type), ae_pb_deinit(&vi);
}

static void metadata_prop(ae_pb *model, const char *key, const char *value)
{
	ae_pb e;
	ae_pb_init(&e);
	ae_pb_str(&e, ENTRY_KEY, key);
	ae_pb_str(&e, ENTRY_VALUE, value);
	ae_pb_msg(model, MODEL_METADATA_PROPS, &e);
	ae_pb_deinit(&e);
}

/* The GraphProto of layers [first, end) of m into g. */
static void graph(ae_pb *g, const ae_model *m, ae_onnx_part part, const ae_onnx_sig *sig, size_t bytes)
{
	const ae_net *net = &m->net;
	int first, end;
	part_range(net, part, &first, &end);
	ae_pb nodes;
	ae_pb_init(&nodes);
	for (int i = first; i < end; i++)
		layer_node(&nodes, &net->layers[i], value_name(net, i - 1), value_name(net, i));
	if (nodes.failed) g->failed = 1;
	ae_pb_reserve(g, bytes + nodes.len + 4096);
	/* nodes holds whole GraphProto.node fields already */
	ae_pb_put(g, nodes.p, nodes.len);
	ae_pb_deinit(&nodes);
	ae_pb_str(g, GRAPH_NAME, ae_onnx_part_name(part));
	for (int i = first; i < end; i++)
		layer_initializers(g, m, &net->layers[i]);
	char doc[512];
	snprintf(doc, sizeof doc,
	         "The %s of a libae autoencoder (task %s): images are float32 NCHW in [0, 1]; the model expects %s.",
	         ae_onnx_part_name(part), m->task, ae_transform_expects(&m->transform));
	ae_pb_str(g, GRAPH_DOC_STRING, doc);
	for (int i = 0; i < sig->n_in; i++)
		value_info(g, GRAPH_INPUT, &sig->in[i]);
	for (int i = 0; i < sig->n_out; i++)
		value_info(g, GRAPH_OUTPUT, &sig->out[i]);
}

int ae_onnx_encode(const ae_model *m, ae_onnx_part part, uint8_t **out, size_t *len, ae_error *err)
{
	*out = NULL;
	*len = 0;
	ae_onnx_sig sig;
	int rc = ae_onnx_signature(&m->net, part, &sig, err);
	if (rc) return rc;
	int first, end;
	part_range(&m->net, part, &first, &end);
	size_t bytes = 0;
	for (int i = first; i < end; i++)
		bytes += layer_bytes(&m->net.layers[i]);
	if (bytes > AE_ONNX_MAX_BYTES)
		return ae_fail(err, AE_ERR_RANGE,
		               "the %s's weights take %zu MiB; one ONNX file holds at most %zu MiB (protobuf's limit)",
		               ae_onnx_part_name(part), bytes >> 20, AE_ONNX_MAX_BYTES >> 20);
	ae_model_meta mm;
	rc = ae_model_meta_init(&mm, m, err);
	if (rc) return rc;
	ae_pb g, model, opset;
	ae_pb_init(&g);
	graph(&g, m, part, &sig, bytes);
	ae_pb_init(&model);
	ae_pb_reserve(&model, g.len + 65536);
	ae_pb_int(&model, MODEL_IR_VERSION, AE_ONNX_IR_VERSION);
	ae_pb_str(&model, MODEL_PRODUCER_NAME, "libae");
	ae_pb_str(&model, MODEL_PRODUCER_VERSION, AE_VERSION);
	ae_pb_str(&model, MODEL_DOC_STRING,
	          "An autoencoder trained by aetrain; metadata_props hold its model file's "
	          "metadata (docs/model-format.md)");
	ae_pb_msg(&model, MODEL_GRAPH, &g);
	ae_pb_deinit(&g);
	ae_pb_init(&opset);
	ae_pb_int(&opset, OPSET_VERSION, AE_ONNX_OPSET);
	ae_pb_msg(&model, MODEL_OPSET_IMPORT, &opset);
	ae_pb_deinit(&opset);
	for (int i = 0; i < mm.n; i++)
		metadata_prop(&model, mm.key[i], mm.value[i]);
	ae_model_meta_deinit(&mm);
	if (model.failed || model.len > AE_ONNX_MAX_BYTES) {
		ae_pb_deinit(&model);
		return ae_fail(err, AE_ERR_NOMEM, "cannot build the %s's ONNX graph: out of memory, or over %zu MiB",
		               ae_onnx_part_name(part), AE_ONNX_MAX_BYTES >> 20);
	}
	*out = model.p;
	*len = model.len;
	return AE_OK;
}

int ae_onnx_write(const ae_model *m, ae_onnx_part part, const char *path, ae_error *err)
{
	uint8_t *buf;
	size_t len;
	int rc = ae_onnx_encode(m, part, &buf, &len, err);
	if (rc) return rc;
	ae_atomic_file af;
	rc = ae_atomic_open(&af, path, err);
	if (rc == AE_OK && fwrite(buf, 1, len, af.fp) != len) {
		ae_atomic_abort(&af);
		rc = ae_fail(err, AE_ERR_IO, "%s: write failed", path);
	} else if (rc == AE_OK) {
		rc = ae_atomic_commit(&af, err);
	}
	free(buf);
	return rc;
}
