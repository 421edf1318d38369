/*
 * json.h — typed reads of JSON object fields through jansson, with one-line errors that name the
 * file and the field ("config.json: field \"hidden_size\": expected an integer in [1, 1048576], got -4").
 * Each getter distinguishes "absent" (returns false, leaves *out alone) from "present but wrong"
 * (fails with GLMOE_E_CONFIG) so callers can apply defaults.
 */
#ifndef GLMOE_IO_JSON_H
#define GLMOE_IO_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

/* Reads a whole file (at most max_bytes, as gm_file_read) and parses it strictly (duplicate keys
 * rejected); display_name names the file in parse errors. */
glmoe_status gm_json_load_file(json_t **out, const char *path, const char *display_name,
                            size_t max_bytes, gm_err *err);

/* Parses a buffer strictly. */
glmoe_status gm_json_load_buffer(json_t **out, const char *buf, size_t len, const char *display_name,
                              gm_err *err);

/* *present tells whether the key exists and is not JSON null. */
glmoe_status gm_json_get_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                          bool *present, const char *file, gm_err *err);
glmoe_status gm_json_get_number(const json_t *obj, const char *key, double lo, double hi, double *out,
                             bool *present, const char *file, gm_err *err);
glmoe_status gm_json_get_bool(const json_t *obj, const char *key, bool *out, bool *present,
                           const char *file, gm_err *err);
glmoe_status gm_json_get_string(const json_t *obj, const char *key, const char **out, bool *present,
                             const char *file, gm_err *err);

#endif
