/*
 * Compact latent codes, the autoencoder as a compressor: a code as 32-bit
 * floats, as IEEE half floats (binary16, rounded to nearest even), or as
 * int8 with a per-dimension scale the model carries (q = round(z / s)
 * clamped to [-127, 127]; z is read back as q * s).
 */
#ifndef AE_CODES_H
#define AE_CODES_H

#include <stddef.h>
#include <stdint.h>

typedef enum ae_code_format { AE_CODE_F32, AE_CODE_F16, AE_CODE_INT8, AE_CODE_FORMATS } ae_code_format;

/* "f32", "f16", "int8" -> the format, or -1. */
int ae_code_format_find(const char *name);
const char *ae_code_format_name(ae_code_format f);
/* Bytes of one code of dim values (the int8 scale is the model's, not the code's). */
size_t ae_code_bytes(ae_code_format f, int dim);

uint16_t ae_f32_to_f16(float x);
float ae_f16_to_f32(uint16_t h);

/* The scale of each of dim dimensions for codes z (n, dim): the largest
 * magnitude seen over 127 (1 for a dimension that is always 0). */
void ae_codes_int8_scale(const float *z, int n, int dim, float *scale);
void ae_codes_to_int8(const float *z, int n, int dim, const float *scale, int8_t *q);
void ae_codes_from_int8(const int8_t *q, int n, int dim, const float *scale, float *z);

/* z (n, dim) rounded through format f and back, in place: what a client
 * that keeps the compact form gets when it decodes. */
void ae_codes_round_trip(ae_code_format f, float *z, int n, int dim, const float *scale);

#endif
