/* quant_config.c — the quantization block of config.json (quant_config.h). */
#include "model/quant_config.h"

#include <stdlib.h>
#include <string.h>

#include "backend/formats.h"
#include "io/json.h"
#include "util/quote.h"

/* bits or group_size of an object (global block or override): absent or null keeps *v. */
static glmoe_status get_param(const json_t *o, const char *key, const char *where, int32_t *v, const char *file,
                              gm_err *err) {
    const json_t *j = json_object_get(o, key);
    if (!j || json_is_null(j)) return GLMOE_OK;
    if (!json_is_integer(j))
        return gm_fail(err, GLMOE_E_CONFIG, "%s: %s.%s: expected an integer", file, where, key);
    const json_int_t x = json_integer_value(j);
    const bool bits = !strcmp(key, "bits");
    if (bits ? !gm_affine_legal((int32_t)(x >= 2 && x <= 8 ? x : 0), 64)
             : !gm_affine_legal(4, (int32_t)(x >= 32 && x <= 128 ? x : 0)))
        return gm_fail(err, GLMOE_E_CONFIG, "%s: %s.%s is %lld; MLX's affine mode takes %s", file, where, key,
                       (long long)x, bits ? "2, 3, 4, 5, 6 or 8" : "32, 64 or 128");
    *v = (int32_t)x;
    return GLMOE_OK;
}

static glmoe_status check_mode(const json_t *o, const char *where, const char *file, gm_err *err) {
    const json_t *m = json_object_get(o, "mode");
    if (!m || json_is_null(m)) return GLMOE_OK;
    if (!json_is_string(m) || strcmp(json_string_value(m), "affine") != 0) {
        char q[96];
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "%s: %s.mode %s is not supported (glmoe reads MLX's affine mode)",
                       file, where, json_is_string(m) ? gm_quote(q, sizeof q, json_string_value(m)) : "(not a string)");
    }
    return GLMOE_OK;
}

static int cmp_override(const void *a, const void *b) {
    return strcmp(((const gm_quant_override *)a)->module, ((const gm_quant_override *)b)->module);
}

/* The block mlx-lm reads: "quantization", else a foreign-looking "quantization_config" only if it
 * has bits and group_size and no quant_method. */
static const json_t *find_block(const json_t *root, const char **key) {
    const json_t *b = json_object_get(root, "quantization");
    if (b) {
        *key = "quantization";
        return b;
    }
    b = json_object_get(root, "quantization_config");
    *key = "quantization_config";
    return b;
}

static glmoe_status parse_root(gm_quant_config *q, json_t *root, const char *file, gm_err *err);

glmoe_status quant_config_parse(gm_quant_config *q, const char *text, size_t len, const char *file, gm_err *err) {
    memset(q, 0, sizeof *q);
    json_t *root = NULL;
    glmoe_status s = gm_json_load_buffer(&root, text, len, file, err);
    return s ? s : parse_root(q, root, file, err);
}

glmoe_status quant_config_load(gm_quant_config *q, const char *dir, gm_err *err) {
    memset(q, 0, sizeof *q);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *root = NULL;
    glmoe_status s = gm_json_load_file(&root, path, "config.json", (size_t)16 << 20, err);
    return s ? s : parse_root(q, root, "config.json", err);
}

/* Parses and releases root. */
static glmoe_status parse_root(gm_quant_config *q, json_t *root, const char *file, gm_err *err) {
    glmoe_status s = GLMOE_OK;
    const char *key = NULL;
    const json_t *b = json_is_object(root) ? find_block(root, &key) : NULL;
    if (!b || json_is_null(b)) goto done;
    if (!json_is_object(b)) {
        s = gm_fail(err, GLMOE_E_CONFIG, "%s: %s: expected an object", file, key);
        goto done;
    }
    if (!strcmp(key, "quantization_config")) {
        if (json_object_get(b, "quant_method")) {
            const json_t *m = json_object_get(b, "quant_method");
            char qm[96];
            s = gm_fail(err, GLMOE_E_UNSUPPORTED,
                        "%s: quantization_config.quant_method %s is not supported (glmoe reads MLX's affine mode)",
                        file, json_is_string(m) ? gm_quote(qm, sizeof qm, json_string_value(m)) : "(not a string)");
            goto done;
        }
        if (!json_object_get(b, "bits") || !json_object_get(b, "group_size")) goto done; /* not MLX's */
    }
    q->present = true;
    q->key = key;
    q->bits = 4; /* MLX's affine defaults */
    q->group = 64;
    if ((s = check_mode(b, key, file, err)) || (s = get_param(b, "bits", key, &q->bits, file, err)) ||
        (s = get_param(b, "group_size", key, &q->group, file, err)))
        goto done;

    size_t n = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)b, k, v) n += json_is_object(v) || json_is_boolean(v);
    if (n > GM_QUANT_MAX_OVERRIDES) {
        s = gm_fail(err, GLMOE_E_CONFIG, "%s: %s has %zu module overrides (at most %d)", file, key, n,
                    GM_QUANT_MAX_OVERRIDES);
        goto done;
    }
    q->overrides = calloc(n ? n : 1, sizeof *q->overrides);
    if (!q->overrides) {
        s = gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory for %zu quantization overrides", file, n);
        goto done;
    }
    json_object_foreach((json_t *)b, k, v) {
        if (!json_is_object(v) && !json_is_boolean(v)) continue; /* the global fields, or unknown scalars */
        char where[320], kq[256];
        snprintf(where, sizeof where, "%s[%s]", key, gm_quote(kq, sizeof kq, k));
        gm_quant_override *o = &q->overrides[q->n_overrides];
        o->module = strdup(k);
        if (!o->module) {
            s = gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", file);
            goto done;
        }
        q->n_overrides++;
        o->quantized = !json_is_false(v);
        o->bits = q->bits;
        o->group = q->group;
        if (json_is_object(v) && ((s = check_mode(v, where, file, err)) ||
                                  (s = get_param(v, "bits", where, &o->bits, file, err)) ||
                                  (s = get_param(v, "group_size", where, &o->group, file, err))))
            goto done;
    }
    qsort(q->overrides, q->n_overrides, sizeof *q->overrides, cmp_override);
done:
    json_decref(root);
    if (s) quant_config_free(q);
    return s;
}

gm_quant_override *quant_config_find(const gm_quant_config *q, const char *module) {
    if (!q->n_overrides) return NULL;
    gm_quant_override key = {.module = (char *)module};
    return bsearch(&key, q->overrides, q->n_overrides, sizeof key, cmp_override);
}

void quant_config_free(gm_quant_config *q) {
    for (size_t i = 0; i < q->n_overrides; i++) free(q->overrides[i].module);
    free(q->overrides);
    memset(q, 0, sizeof *q);
}
