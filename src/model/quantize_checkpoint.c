/* quantize_checkpoint.c — a float checkpoint to an MLX quantized one (quantize_checkpoint.h). */
#include "model/quantize_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "model/config.h"
#include "model/quant_config.h"
#include "model/tensor_map.h"
#include "util/dtype.h"

#define SHARD_BYTES ((uint64_t)5 << 30) /* mlx-lm's largest shard */
#define MAX_NAME 256 /* longer input names are refused (real ones are under 100 bytes) */

/* One module or tensor of the output: 1 tensor (copied) or 3 (codes, scales, biases), written
 * one after the other into one shard. */
typedef struct unit {
    char name[MAX_NAME + 16];    /* output module path (quantized) or tensor name (copied) */
    const st_tensor **src;       /* the source tensor, or the E per-expert tensors */
    int64_t n_src;               /* 1, or E for stacked experts */
    bool quantized;
    st_decl decl[3];             /* the output tensors */
    char names[3][MAX_NAME + 32];
    int n_decl;
    uint64_t bytes;              /* output bytes */
    int shard;
} unit;

typedef struct job {
    const char *out_dir;
    gm_config cfg;
    st_set *set;
    gm_affine q;                 /* bits, group, scale type */
    unit *units;
    size_t n_units;
    int n_shards;
    uint64_t in_bytes, done, params;
    checkpoint_progress_fn progress;
    void *user;
    char **created;              /* files written into out_dir, removed on failure */
    size_t n_created;
    gm_err *err;
} job;

static st_dtype st_of(gm_wtype t) { return t == GM_W_BF16 ? ST_BF16 : t == GM_W_F16 ? ST_F16 : ST_F32; }
static gm_wtype wt_of(st_dtype d) { return d == ST_BF16 ? GM_W_BF16 : d == ST_F16 ? GM_W_F16 : GM_W_F32; }
static bool is_float(st_dtype d) { return d == ST_BF16 || d == ST_F16 || d == ST_F32; }

static int cmp_unit(const void *a, const void *b) { return strcmp(((const unit *)a)->name, ((const unit *)b)->name); }

static glmoe_status track(job *j, const char *file) {
    char **c = realloc(j->created, (j->n_created + 1) * sizeof *c);
    if (!c || !(c[j->n_created] = strdup(file))) {
        if (c) j->created = c;
        return gm_fail(j->err, GLMOE_E_NOMEM, "out of memory");
    }
    j->created = c;
    j->n_created++;
    return GLMOE_OK;
}

/* "HF per-expert": model.layers.L.mlp.experts.E.<proj>.weight → L, E and proj. */
static bool expert_name(const char *name, long *layer, long *e, char *proj, size_t n) {
    long L = tmap_layer_index(name);
    if (L < 0) return false;
    const char *p = strstr(name, ".mlp.experts.");
    if (!p) return false;
    char *end;
    *e = strtol(p + strlen(".mlp.experts."), &end, 10);
    if (end == p + strlen(".mlp.experts.") || *end != '.') return false;
    const char *dot = strrchr(end + 1, '.');
    if (!dot || strcmp(dot, ".weight") != 0 || (size_t)(dot - end - 1) >= n) return false;
    memcpy(proj, end + 1, (size_t)(dot - end - 1));
    proj[dot - end - 1] = 0;
    *layer = L;
    return true;
}

/* The output unit of a quantized module: codes [.., rows, cols*b/32] U32, scales and biases. */
static void declare_quantized(job *j, unit *u, const char *module, int64_t lead, int64_t rows, int64_t cols) {
    snprintf(u->name, sizeof u->name, "%s", module);
    static const char *const part[3] = {"weight", "scales", "biases"};
    const int64_t widths[3] = {cols * j->q.bits / 32, cols / j->q.group, cols / j->q.group};
    for (int k = 0; k < 3; k++) {
        snprintf(u->names[k], sizeof u->names[k], "%s.%s", module, part[k]);
        st_decl *d = &u->decl[k];
        d->name = u->names[k];
        d->dtype = k ? st_of(j->q.scale_type) : ST_U32;
        d->rank = 0;
        if (lead) d->shape[d->rank++] = (uint64_t)lead;
        d->shape[d->rank++] = (uint64_t)rows;
        d->shape[d->rank++] = (uint64_t)widths[k];
        u->bytes += st_decl_bytes(d);
    }
    u->n_decl = 3;
    u->quantized = true;
}

static void declare_copy(unit *u, const char *name, st_dtype dt, int rank, const uint64_t *shape, int64_t lead) {
    snprintf(u->name, sizeof u->name, "%s", name);
    snprintf(u->names[0], sizeof u->names[0], "%s", name);
    st_decl *d = &u->decl[0];
    d->name = u->names[0];
    d->dtype = dt;
    d->rank = 0;
    if (lead) d->shape[d->rank++] = (uint64_t)lead;
    for (int i = 0; i < rank; i++) d->shape[d->rank++] = shape[i];
    u->bytes = st_decl_bytes(d);
    u->n_decl = 1;
}

/* Every output unit, from the input's tensors. */
static glmoe_status plan(job *j) {
    const size_t n = st_set_count(j->set);
    j->units = calloc(n + 1, sizeof *j->units);
    if (!j->units) return gm_fail(j->err, GLMOE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_set_tensor(j->set, i);
        if (strlen(t->name) >= MAX_NAME - 32)
            return gm_fail(j->err, GLMOE_E_UNSUPPORTED, "%s: a tensor name of %zu bytes is longer than glmoe quantize takes "
                           "(%d)", st_file_name(t->file), strlen(t->name), MAX_NAME - 32);
        j->in_bytes += t->nbytes;
        long L, e;
        char proj[64];
        if (expert_name(t->name, &L, &e, proj, sizeof proj) && L <= j->cfg.n_layers) { /* the model's and its MTP layer's */
            if (e != 0) continue; /* the unit of expert 0 gathers them all */
            const int64_t E = j->cfg.n_experts;
            unit *u = &j->units[j->n_units];
            u->src = calloc((size_t)E, sizeof *u->src);
            if (!u->src) return gm_fail(j->err, GLMOE_E_NOMEM, "out of memory");
            u->n_src = E;
            for (int64_t k = 0; k < E; k++) {
                char name[MAX_NAME];
                snprintf(name, sizeof name, "model.layers.%ld.mlp.experts.%lld.%s.weight", L, (long long)k, proj);
                const st_tensor *x = st_set_find(j->set, name);
                if (!x || x->rank != 2 || x->dtype != t->dtype || x->shape[0] != t->shape[0] || x->shape[1] != t->shape[1])
                    return gm_fail(j->err, GLMOE_E_WEIGHTS, "tensor \"%s\" is %s: the %lld experts of layer %ld must all "
                                   "be there with one shape and dtype", name, x ? "mismatched" : "missing", (long long)E, L);
                u->src[k] = x;
            }
            char module[MAX_NAME];
            snprintf(module, sizeof module, "model.layers.%ld.mlp.switch_mlp.%s", L, proj);
            const int64_t rows = (int64_t)t->shape[0], cols = (int64_t)t->shape[1];
            if (is_float(t->dtype) && cols % j->q.group == 0) {
                declare_quantized(j, u, module, E, rows, cols);
            } else {
                char wname[MAX_NAME + 8];
                snprintf(wname, sizeof wname, "%s.weight", module);
                declare_copy(u, wname, t->dtype, 2, t->shape, E);
            }
            j->params += (uint64_t)E * (uint64_t)rows * (uint64_t)cols;
            j->n_units++;
            continue;
        }
        unit *u = &j->units[j->n_units++];
        u->src = calloc(1, sizeof *u->src);
        if (!u->src) return gm_fail(j->err, GLMOE_E_NOMEM, "out of memory");
        u->src[0] = t;
        u->n_src = 1;
        j->params += t->numel;
        const size_t len = strlen(t->name);
        char module[MAX_NAME] = "";
        if (len > 7 && !strcmp(t->name + len - 7, ".weight") && len - 7 < sizeof module) {
            memcpy(module, t->name, len - 7);
            module[len - 7] = 0;
        }
        const bool extra = tmap_layer_index(t->name) > j->cfg.n_layers; /* MTP layers glmoe does not run */
        if (module[0] && !extra && tmap_quantizable(module) && t->rank == 2 && is_float(t->dtype) &&
            (int64_t)t->shape[1] % j->q.group == 0)
            declare_quantized(j, u, module, 0, (int64_t)t->shape[0], (int64_t)t->shape[1]);
        else
            declare_copy(u, t->name, t->dtype, t->rank, t->shape, 0);
    }
    qsort(j->units, j->n_units, sizeof *j->units, cmp_unit);
    /* Shards: units in order, a new shard when the next unit would pass SHARD_BYTES. */
    uint64_t in_shard = 0;
    j->n_shards = 1;
    for (size_t i = 0; i < j->n_units; i++) {
        if (in_shard && in_shard + j->units[i].bytes > SHARD_BYTES) {
            j->n_shards++;
            in_shard = 0;
        }
        j->units[i].shard = j->n_shards - 1;
        in_shard += j->units[i].bytes;
    }
    return GLMOE_OK;
}

static void shard_name(const job *j, int s, char *buf, size_t n) {
    if (j->n_shards == 1) snprintf(buf, n, "model.safetensors");
    else snprintf(buf, n, "model-%05d-of-%05d.safetensors", s + 1, j->n_shards);
}

static void report(job *j, const st_tensor *t) {
    j->done += t->nbytes;
    if (j->progress) j->progress(j->done, j->in_bytes, t->name, j->user);
}

/* Quantizes the rows of one source tensor [rows, cols], appending the codes and keeping the
 * scales and biases at *tab_at (advanced). */
static glmoe_status quantize_rows(job *j, st_writer *w, const st_tensor *t, uint8_t *scales, uint8_t *biases,
                                  size_t *tab_at, float *row, uint32_t *codes) {
    const int64_t rows = (int64_t)t->shape[0], cols = (int64_t)t->shape[1];
    const gm_weight src = {.type = wt_of(t->dtype), .rows = rows, .cols = cols, .data = t->data};
    const size_t tab_row = (size_t)(cols / j->q.group) * gm_wtype_size(j->q.scale_type);
    for (int64_t r = 0; r < rows; r++) {
        gm_weight_row_f32(&src, r, 0, cols, row);
        /* mlx-lm casts the model to its dtype before quantizing. */
        if (j->q.scale_type == GM_W_BF16)
            for (int64_t i = 0; i < cols; i++) row[i] = gm_bf16_to_f32(gm_f32_to_bf16(row[i]));
        else if (j->q.scale_type == GM_W_F16)
            for (int64_t i = 0; i < cols; i++) row[i] = gm_f16_to_f32(gm_f32_to_f16(row[i]));
        gm_affine_quantize_row(row, cols, &j->q, codes, scales + *tab_at, biases + *tab_at);
        *tab_at += tab_row;
        glmoe_status s = st_writer_append(w, codes, (size_t)cols * (size_t)j->q.bits / 8, j->err);
        if (s) return s;
    }
    return GLMOE_OK;
}

static glmoe_status write_unit(job *j, st_writer *w, const unit *u) {
    glmoe_status s = GLMOE_OK;
    if (!u->quantized) {
        for (int64_t k = 0; k < u->n_src && !s; k++) {
            s = st_writer_append(w, u->src[k]->data, (size_t)u->src[k]->nbytes, j->err);
            report(j, u->src[k]);
        }
        return s;
    }
    const int64_t cols = (int64_t)u->src[0]->shape[1];
    const size_t tab = (size_t)st_decl_bytes(&u->decl[1]);
    uint8_t *scales = malloc(tab + 1), *biases = malloc(tab + 1);
    float *row = malloc((size_t)cols * sizeof *row);
    uint32_t *codes = malloc((size_t)cols * (size_t)j->q.bits / 8 + 4);
    if (!scales || !biases || !row || !codes) {
        s = gm_fail(j->err, GLMOE_E_NOMEM, "%s: out of memory", u->name);
    } else {
        size_t at = 0;
        for (int64_t k = 0; k < u->n_src && !s; k++) {
            s = quantize_rows(j, w, u->src[k], scales, biases, &at, row, codes);
            report(j, u->src[k]);
        }
        if (!s) s = st_writer_append(w, scales, tab, j->err);
        if (!s) s = st_writer_append(w, biases, tab, j->err);
    }
    free(scales);
    free(biases);
    free(row);
    free(codes);
    return s;
}

static glmoe_status write_shards(job *j) {
    static const char *const meta[][2] = {{"format", "mlx"}};
    glmoe_status s = GLMOE_OK;
    for (int sh = 0; sh < j->n_shards && !s; sh++) {
        size_t first = 0, n = 0, nd = 0;
        while (first < j->n_units && j->units[first].shard != sh) first++;
        while (first + n < j->n_units && j->units[first + n].shard == sh) nd += (size_t)j->units[first + n++].n_decl;
        st_decl *decls = calloc(nd + 1, sizeof *decls);
        if (!decls) return gm_fail(j->err, GLMOE_E_NOMEM, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (int d = 0; d < j->units[first + i].n_decl; d++) {
                decls[k] = j->units[first + i].decl[d];
                decls[k++].name = j->units[first + i].names[d]; /* the units moved when sorted */
            }
        char file[64], path[4300];
        shard_name(j, sh, file, sizeof file);
        snprintf(path, sizeof path, "%s/%s", j->out_dir, file);
        st_writer *w = NULL;
        s = st_writer_open(&w, path, decls, nd, meta, 1, j->err);
        free(decls);
        if (!s) s = track(j, file);
        for (size_t i = 0; i < n && !s; i++) s = write_unit(j, w, &j->units[first + i]);
        if (s) st_writer_abort(w);
        else s = st_writer_close(w, j->err);
    }
    return s;
}

/* Writes len bytes to out_dir/name (a new file). */
static glmoe_status write_bytes(job *j, const char *name, const char *bytes, size_t len) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", j->out_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return gm_fail(j->err, GLMOE_E_IO, "cannot create %s: %s", path, strerror(errno));
    glmoe_status s = track(j, name);
    size_t done = 0;
    while (!s && done < len) {
        ssize_t k = write(fd, bytes + done, len - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) s = gm_fail(j->err, GLMOE_E_IO, "cannot write %s: %s", path, k < 0 ? strerror(errno) : "no progress");
        else done += (size_t)k;
    }
    if (close(fd) != 0 && !s) s = gm_fail(j->err, GLMOE_E_IO, "cannot close %s: %s", path, strerror(errno));
    return s;
}

static glmoe_status write_json(job *j, const char *name, json_t *o) {
    char *text = json_dumps(o, JSON_INDENT(4) | JSON_SORT_KEYS);
    if (!text) return gm_fail(j->err, GLMOE_E_NOMEM, "out of memory writing %s", name);
    size_t n = strlen(text);
    char *nl = realloc(text, n + 2);
    if (!nl) {
        free(text);
        return gm_fail(j->err, GLMOE_E_NOMEM, "out of memory writing %s", name);
    }
    memcpy(nl + n, "\n", 2);
    glmoe_status s = write_bytes(j, name, nl, n + 1);
    free(nl);
    return s;
}

static glmoe_status write_index(job *j) {
    json_t *map = json_object();
    uint64_t total = 0;
    for (size_t i = 0; i < j->n_units; i++) {
        char file[64];
        shard_name(j, j->units[i].shard, file, sizeof file);
        for (int d = 0; d < j->units[i].n_decl; d++) json_object_set_new(map, j->units[i].names[d], json_string(file));
        total += j->units[i].bytes;
    }
    json_t *o = json_pack("{s:{s:I, s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "total_parameters",
                          (json_int_t)j->params, "weight_map", map);
    if (!o) return gm_fail(j->err, GLMOE_E_NOMEM, "out of memory writing the index");
    glmoe_status s = write_json(j, "model.safetensors.index.json", o);
    json_decref(o);
    return s;
}

/* config.json with the quantization block (and its copy for the Hugging Face tree). */
static glmoe_status write_config(job *j, const char *in_dir) {
    char path[4300];
    snprintf(path, sizeof path, "%s/config.json", in_dir);
    json_t *c = NULL;
    glmoe_status s0 = gm_json_load_file(&c, path, "config.json", (size_t)16 << 20, j->err);
    if (s0) return s0;
    for (int k = 0; k < 2; k++)
        json_object_set_new(c, k ? "quantization_config" : "quantization",
                            json_pack("{s:i, s:i, s:s}", "group_size", j->q.group, "bits", j->q.bits, "mode", "affine"));
    /* mlx-lm reads RoPE only in the flat form of the official configs: give it those fields
     * when the checkpoint has the nested form of transformers 5 (glmoe reads both). */
    const json_t *rp = json_object_get(c, "rope_parameters");
    static const struct { const char *key; double def; } flat[] = {{"rope_theta", 10000.0}, {"partial_rotary_factor", 0.5}};
    for (size_t i = 0; i < 2; i++)
        if (!json_object_get(c, flat[i].key)) {
            const json_t *v = json_is_object(rp) ? json_object_get(rp, flat[i].key) : NULL;
            json_object_set_new(c, flat[i].key, v ? json_deep_copy(v) : json_real(flat[i].def));
        }
    if (!json_object_get(c, "rope_scaling")) json_object_set_new(c, "rope_scaling", json_null());
    glmoe_status s = write_json(j, "config.json", c);
    json_decref(c);
    return s;
}

/* Copies in_dir/name to the output if it is there (through the one file-open path: a regular
 * file, never waited on). Tokenizer files are small; 1 GiB bounds a hostile one. */
static glmoe_status copy_file(job *j, const char *in_dir, const char *name) {
    char src[4300];
    snprintf(src, sizeof src, "%s/%s", in_dir, name);
    char *data = NULL;
    size_t len = 0;
    bool missing = false;
    glmoe_status s = gm_file_read(&data, &len, src, (size_t)1 << 30, &missing, j->err);
    if (s || missing) return s;
    s = write_bytes(j, name, data, len);
    free(data);
    return s;
}

glmoe_status checkpoint_quantize(const char *in_dir, const char *out_dir, int32_t bits, int32_t group,
                                 checkpoint_progress_fn progress, void *user, gm_err *err) {
    job j = {.out_dir = out_dir, .progress = progress, .user = user, .err = err};
    glmoe_status s;
    gm_quant_config qc;
    if (!gm_affine_legal(bits, group))
        return gm_fail(err, GLMOE_E_ARG, "%d bits in groups of %d is not an MLX affine format (bits 2, 3, 4, 5, 6 or 8; "
                       "group size 32, 64 or 128)", bits, group);
    if ((s = config_load(&j.cfg, in_dir, err))) return s;
    if ((s = quant_config_load(&qc, in_dir, err))) return s;
    const bool already = qc.present;
    quant_config_free(&qc);
    if (already) return gm_fail(err, GLMOE_E_ARG, "%s is quantized already (config.json has a quantization block)", in_dir);
    if ((s = st_set_open_dir(&j.set, in_dir, err))) return s;
    j.q = (gm_affine){bits, group, GM_W_BF16};
    if (!strcmp(j.cfg.dtype, "float16")) j.q.scale_type = GM_W_F16;
    if (!strcmp(j.cfg.dtype, "float32")) j.q.scale_type = GM_W_F32;
    if ((s = plan(&j))) goto done;
    if (mkdir(out_dir, 0755) != 0) {
        s = gm_fail(err, GLMOE_E_IO, "%s: %s", out_dir,
                    errno == EEXIST ? "exists already; glmoe quantize writes a new directory and never overwrites"
                                    : strerror(errno));
        goto done;
    }
    static const char *const copies[] = {"tokenizer.json", "tokenizer.json.gz", "tokenizer_config.json",
                                         "special_tokens_map.json", "generation_config.json", "chat_template.jinja"};
    if (!(s = write_config(&j, in_dir)) && !(s = write_shards(&j)) && !(s = write_index(&j)))
        for (size_t i = 0; i < sizeof copies / sizeof copies[0] && !s; i++) s = copy_file(&j, in_dir, copies[i]);
    if (s) { /* leave nothing half-written */
        for (size_t i = 0; i < j.n_created; i++) {
            char path[4300];
            snprintf(path, sizeof path, "%s/%s", out_dir, j.created[i]);
            unlink(path);
        }
        rmdir(out_dir);
    }
done:
    for (size_t i = 0; i < j.n_units; i++) free(j.units[i].src);
    free(j.units);
    for (size_t i = 0; i < j.n_created; i++) free(j.created[i]);
    free(j.created);
    st_set_close(j.set);
    return s;
}
