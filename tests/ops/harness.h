/*
 * harness.h — what the op checks need around a backend: a seeded random stream, backend buffers
 * that are freed together, host weights of every dtype bound through weight_bind, and the
 * comparison of an output with the reference.
 *
 * Everything goes through the backend's vtable (alloc, copy_in, copy_out, weight_bind), so the
 * same checks run on the CPU backend and on a GPU backend: backend pointers are never
 * dereferenced here. Every buffer has a guard of OPS_GUARD floats after its end, filled with a
 * bit pattern that no op writes; ops_download() reports an op that wrote past its output.
 */
#ifndef GLMOE_TESTS_OPS_HARNESS_H
#define GLMOE_TESTS_OPS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "ops/reference.h"

#define OPS_GUARD 16

/* A host matrix with random contents, and its description for weight_bind and the reference. */
typedef struct ops_host_matrix {
    ref_matrix ref;        /* type, shape, data (what the reference reads)      */
    gm_host_tensor host;   /* the same bytes as weight_bind sees them           */
    void *alloc;           /* the malloc'd block; data may start one byte in    */
} ops_host_matrix;

/* Worst result of one op group over the cases run. */
typedef struct ops_stats {
    const char *name;
    int cases, failures;
    double worst, worst_tol;  /* the largest err / tol ratio seen and its tolerance */
    double worst_err;         /* the relative error of that case */
} ops_stats;

typedef struct ops_ctx {
    gm_backend *be;
    gm_exec *ex;          /* the execution state every op runs on (made by the caller) */
    const char *label;        /* e.g. "cpu x2": printed in every failure */
    uint64_t rng;
    gm_err err;
    /* What this case allocated, freed by ops_release(). */
    void **dev; size_t n_dev, cap_dev;
    gm_weight **weights; size_t n_weights, cap_weights;
    ops_host_matrix **hosts; size_t n_hosts, cap_hosts;
} ops_ctx;

void ops_init(ops_ctx *c, gm_backend *be, const char *label, uint64_t seed);

/* Frees every buffer, weight and host matrix made since the last release (weights first: an
 * aligned weight may point into its host matrix). */
void ops_release(ops_ctx *c);
/* Releases everything and the context's own lists. */
void ops_destroy(ops_ctx *c);

/* ---- random data ------------------------------------------------------------------------- */
uint64_t ops_rand_u64(ops_ctx *c);
double ops_rand_uniform(ops_ctx *c, double lo, double hi);
int32_t ops_rand_int(ops_ctx *c, int32_t lo, int32_t hi); /* in [lo, hi] */
/* Fills n floats with uniform values in ±[lo_mag, hi_mag) of random sign: never zero. */
void ops_fill(ops_ctx *c, float *v, size_t n, double lo_mag, double hi_mag);
float *ops_random_floats(ops_ctx *c, size_t n, double lo_mag, double hi_mag); /* malloc'd */

/* A rows x cols host matrix of type t with values ±[1/64, scale); f16 ones also hold a few
 * subnormals. unaligned: the data starts at an odd address (weight_bind must copy it). */
ops_host_matrix *ops_host_matrix_new(ops_ctx *c, ref_dtype t, int64_t rows, int64_t cols, double scale,
                                     bool unaligned);
/* A rows x cols affine matrix (q<bits> g<group>, scales and biases of scale_type) with random codes,
 * scales of both signs and magnitude ~scale / 2^bits, biases ±[0, scale/2): decoded values of
 * about ±scale. unaligned: the codes start one byte off (weight_bind must copy them). */
ops_host_matrix *ops_affine_matrix_new(ops_ctx *c, int bits, int group, ref_dtype scale_type, int64_t rows,
                                       int64_t cols, double scale, bool unaligned);
/* Binds m to the backend; NULL (after printing why) on failure. */
gm_weight *ops_bind(ops_ctx *c, const ops_host_matrix *m, gm_bind_kind kind);
/* The float values a GM_BIND_VECTOR_F32 weight holds (m decoded), malloc'd doubles. */
double *ops_host_vector_values(const ops_host_matrix *m);

/* ---- backend buffers ----------------------------------------------------------------------- */
/* A backend buffer of n elements (+ guard) holding host[0..n), or NaN (floats) / -1 (ints)
 * when host is NULL: outputs start poisoned so an element the op never writes shows up. */
float *ops_upload_f(ops_ctx *c, const float *host, size_t n);
int32_t *ops_upload_i(ops_ctx *c, const int32_t *host, size_t n);
/* Copies n elements back and checks the guard; false (after printing what) if it was touched. */
bool ops_download_f(ops_ctx *c, float *host, const float *dev, size_t n, const char *what);
bool ops_download_i(ops_ctx *c, int32_t *host, const int32_t *dev, size_t n, const char *what);

/* ---- comparison ---------------------------------------------------------------------------- */
/* err = ||out - ref|| / ||ref|| (||out|| when ref is all zeros). Passes when err <= tol, no
 * element of out is NaN (NaN never passes: an element never written stays NaN), and every
 * element is within OPS_ELEM_FACTOR * tol * max(|ref[i]|, rms(ref)) of ref[i] (one wrong element
 * of a long output barely moves the norm). On failure prints the op, the case, the first
 * mismatching index (else the largest difference) with both values and the NaN count. Updates
 * st with the worst err / tol. */
#define OPS_ELEM_FACTOR 10.0
bool ops_compare(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref, size_t n,
                 double tol);
/* The same with the element check scaled by elem_factor (0: norm only, for ops that check their
 * elements against their own bounds). */
bool ops_compare_ex(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref, size_t n,
                    double tol, double elem_factor);

/* Records a case that failed before any comparison (an op returned an error). */
void ops_stats_fail(ops_stats *st);

#endif
