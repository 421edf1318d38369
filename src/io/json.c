/* json.c — strict JSON loading and typed field access with errors that name the field. */
#include "io/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

glmoe_status gm_json_load_buffer(json_t **out, const char *buf, size_t len, const char *name,
                              gm_err *err) {
    json_error_t jerr;
    *out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out)
        return gm_fail(err, GLMOE_E_FORMAT, "%s: invalid JSON at line %d column %d: %s", name,
                       jerr.line, jerr.column, jerr.text);
    return GLMOE_OK;
}

glmoe_status gm_json_load_file(json_t **out, const char *path, const char *name, size_t max_bytes,
                            gm_err *err) {
    *out = NULL;
    char *buf;
    size_t n;
    glmoe_status s = gm_file_read(&buf, &n, path, max_bytes, NULL, err);
    if (s) return s;
    s = gm_json_load_buffer(out, buf, n, name, err);
    free(buf);
    return s;
}

static const json_t *field(const json_t *obj, const char *key, bool *present) {
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (v && json_is_null(v)) v = NULL;
    if (present) *present = v != NULL;
    return v;
}

glmoe_status gm_json_get_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                          bool *present, const char *file, gm_err *err) {
    const json_t *v = field(obj, key, present);
    if (!v) return GLMOE_OK;
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (int64_t)json_real_value(v); /* 4096.0 written by some tools */
    } else {
        return gm_fail(err, GLMOE_E_CONFIG, "%s: field \"%s\": expected an integer", file, key);
    }
    if (x < lo || x > hi)
        return gm_fail(err, GLMOE_E_CONFIG,
                       "%s: field \"%s\": %lld is outside the allowed range [%lld, %lld]", file, key,
                       (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return GLMOE_OK;
}

glmoe_status gm_json_get_number(const json_t *obj, const char *key, double lo, double hi, double *out,
                             bool *present, const char *file, gm_err *err) {
    const json_t *v = field(obj, key, present);
    if (!v) return GLMOE_OK;
    if (!json_is_number(v))
        return gm_fail(err, GLMOE_E_CONFIG, "%s: field \"%s\": expected a number", file, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) /* also catches NaN */
        return gm_fail(err, GLMOE_E_CONFIG, "%s: field \"%s\": %g is outside the allowed range [%g, %g]",
                       file, key, x, lo, hi);
    *out = x;
    return GLMOE_OK;
}

glmoe_status gm_json_get_bool(const json_t *obj, const char *key, bool *out, bool *present,
                           const char *file, gm_err *err) {
    const json_t *v = field(obj, key, present);
    if (!v) return GLMOE_OK;
    if (!json_is_boolean(v))
        return gm_fail(err, GLMOE_E_CONFIG, "%s: field \"%s\": expected true or false", file, key);
    *out = json_is_true(v);
    return GLMOE_OK;
}

glmoe_status gm_json_get_string(const json_t *obj, const char *key, const char **out, bool *present,
                             const char *file, gm_err *err) {
    const json_t *v = field(obj, key, present);
    if (!v) return GLMOE_OK;
    if (!json_is_string(v))
        return gm_fail(err, GLMOE_E_CONFIG, "%s: field \"%s\": expected a string", file, key);
    *out = json_string_value(v);
    return GLMOE_OK;
}
