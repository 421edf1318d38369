/*
 * cuda_loader.c — the CUDA backend as libglmoe sees it: the functions of
 * backend/cuda/cuda_backend.h served by the module libglmoe-cuda.so, opened with dlopen the first
 * time a GPU is asked for and the driver says there is one (cuda_driver.h). Until then no CUDA
 * library is mapped: a CPU run of a CUDA build costs what a CPU-only build costs. The search
 * order is in cuda_loader.h. Tested by tests/unit/test_cuda_module.c (the module found from the
 * build tree, wrong paths refused, nothing mapped by CPU runs) and tests/install (the installed
 * module found from an installed program).
 */
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda_loader.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cuda_driver.h"
#include "util/log.h"

#define MODULE_FILE "libglmoe-cuda.so"
/* CMake passes both (cmake/cuda.cmake); the defaults are GNUInstallDirs' own. */
#ifndef GLMOE_INSTALL_LIBDIR
#define GLMOE_INSTALL_LIBDIR "lib"
#endif
#ifndef GLMOE_INSTALL_FULL_LIBDIR
#define GLMOE_INSTALL_FULL_LIBDIR "/usr/local/lib"
#endif

/* The module's log messages go to the library's callback. */
static void module_log(glmoe_log_level level, const char *message) { gm_log(level, "%s", message); }

/* The link map of the binary this code is in: libglmoe.so, or a program that links glmoe
 * statically (whose link map is named ""). */
static struct link_map *own_map(void) {
    Dl_info info;
    struct link_map *map = NULL;
    if (!dladdr1((void *)&cuda_module_find, &info, (void **)&map, RTLD_DL_LINKMAP)) return NULL;
    return map;
}

/* The directory of that binary: a shared library's from its link map, a program's from
 * /proc/self/exe (argv[0], which dladdr would give, may be relative or a bare name). */
static bool own_directory(const struct link_map *map, char *dir, size_t size) {
    char path[PATH_MAX];
    if (map->l_name && map->l_name[0]) {
        if (!realpath(map->l_name, path)) return false;
    } else {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0) return false;
        path[n] = '\0';
    }
    char *slash = strrchr(path, '/');
    if (!slash) return false;
    *slash = '\0';
    return snprintf(dir, size, "%s", path) < (int)size;
}

typedef struct search {
    const gm_cuda_module *module;
    char tried[400];       /* where it was looked for, for the message */
    char mismatch[400];    /* the last module skipped as another build's */
    bool failed;           /* a module file that exists would not load: err says why */
} search;

static void note_tried(search *s, const char *where) {
    size_t used = strlen(s->tried);
    snprintf(s->tried + used, sizeof s->tried - used, "%s%s", used ? ", " : "", where);
}

/* Tries one path. Returns true when the search is over: found, or a file that is there would not
 * load (a missing cuBLAS, say: err says so). `note` (may be NULL) is what the message lists. */
static bool try_open(search *s, const char *candidate, const char *note, char *path, size_t path_size, gm_err *err) {
    if (note) note_tried(s, note);
    if (access(candidate, F_OK) != 0) return false;
    void *h = dlopen(candidate, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        gm_fail(err, GLMOE_E_BACKEND, "cuda: cannot load the CUDA backend module: %s", why ? why : candidate);
        s->failed = true;
        return true;
    }
    gm_cuda_module_entry_fn entry = (gm_cuda_module_entry_fn)dlsym(h, GM_CUDA_MODULE_ENTRY);
    const gm_cuda_module *m = entry ? entry(module_log) : NULL;
    if (!m || strcmp(m->build_id, GM_CUDA_BUILD_ID) || m->sizeof_ops != sizeof(gm_backend_ops) ||
        m->sizeof_err != sizeof(gm_err) || m->sizeof_options != sizeof(cuda_backend_options)) {
        if (!m)
            snprintf(s->mismatch, sizeof s->mismatch, "%.200s is not a glmoe CUDA module (no " GM_CUDA_MODULE_ENTRY ")",
                     candidate);
        else
            snprintf(s->mismatch, sizeof s->mismatch, "%.150s is from another build (%.60s; this is " GM_CUDA_BUILD_ID ")",
                     candidate, m->build_id);
        dlclose(h);
        return false;
    }
    snprintf(path, path_size, "%s", candidate);
    s->module = m;
    return true;
}

/* Tries each directory the dynamic loader would search for a library that `map`'s binary needs:
 * its RUNPATH (the build tree's programs carry the build directory), LD_LIBRARY_PATH, the
 * system's directories. Asked of the loader (RTLD_DI_SERINFO) rather than left to dlopen by name,
 * which takes the RUNPATH of whoever calls dlopen: under AddressSanitizer, its interceptor. */
static bool try_search_path(search *s, const struct link_map *map, char *path, size_t path_size, gm_err *err) {
    bool main_program = !map->l_name || !map->l_name[0];
    void *h = main_program ? dlopen(NULL, RTLD_LAZY) : dlopen(map->l_name, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return false;
    Dl_serinfo size;
    Dl_serinfo *info = NULL;
    bool done = false;
    if (dlinfo(h, RTLD_DI_SERINFOSIZE, &size) == 0 && (info = malloc(size.dls_size))) {
        *info = size;
        if (dlinfo(h, RTLD_DI_SERINFOSIZE, info) == 0 && dlinfo(h, RTLD_DI_SERINFO, info) == 0) {
            note_tried(s, "the program's library search path");
            for (unsigned i = 0; !done && i < info->dls_cnt; i++) {
                char candidate[PATH_MAX + 64];
                snprintf(candidate, sizeof candidate, "%s/" MODULE_FILE, info->dls_serpath[i].dls_name);
                done = try_open(s, candidate, NULL, path, path_size, err);
            }
        }
    }
    free(info);
    dlclose(h);
    return done;
}

glmoe_status cuda_module_find(const gm_cuda_module **out, char *path, size_t path_size, gm_err *err) {
    *out = NULL;
    if (path_size) path[0] = '\0';
    search s = {0};
    char candidate[PATH_MAX + 64], dir[PATH_MAX];
    const char *env = getenv("GLMOE_CUDA_MODULE");
    if (env && env[0]) {
        if (!try_open(&s, env, env, path, path_size, err) && !s.mismatch[0])
            return gm_fail(err, GLMOE_E_BACKEND,
                           "cuda: the CUDA backend module GLMOE_CUDA_MODULE names does not exist: %s", env);
    } else {
        struct link_map *map = own_map();
        bool done = false, have_dir = map && own_directory(map, dir, sizeof dir);
        if (have_dir) {
            snprintf(candidate, sizeof candidate, "%s/" MODULE_FILE, dir);
            done = try_open(&s, candidate, candidate, path, path_size, err);
        }
        if (!done && have_dir) {
            snprintf(candidate, sizeof candidate, "%s/../" GLMOE_INSTALL_LIBDIR "/" MODULE_FILE, dir);
            done = try_open(&s, candidate, candidate, path, path_size, err);
        }
        if (!done && map) done = try_search_path(&s, map, path, path_size, err);
        if (!done) {
            const char *installed = GLMOE_INSTALL_FULL_LIBDIR "/" MODULE_FILE;
            try_open(&s, installed, installed, path, path_size, err);
        }
    }
    if (s.failed) return err ? err->code : GLMOE_E_BACKEND;
    if (!s.module) {
        if (s.mismatch[0]) return gm_fail(err, GLMOE_E_BACKEND, "cuda: no CUDA backend module fits: %s", s.mismatch);
        return gm_fail(err, GLMOE_E_BACKEND,
                       "cuda: the CUDA backend module " MODULE_FILE " was not found (looked at %s; GLMOE_CUDA_MODULE "
                       "may name it)",
                       s.tried);
    }
    gm_debug("cuda: opened the backend module %s", path);
    *out = s.module;
    return GLMOE_OK;
}

static struct {
    pthread_once_t once;
    const gm_cuda_module *module;
    char path[PATH_MAX];
    gm_err err;
} g_module = {.once = PTHREAD_ONCE_INIT};

static void module_open_once(void) {
    const gm_cuda_module *m = NULL;
    cuda_module_find(&m, g_module.path, sizeof g_module.path, &g_module.err);
    /* published last: a reader that sees the module sees its path too */
    __atomic_store_n(&g_module.module, m, __ATOMIC_RELEASE);
}

glmoe_status cuda_module_get(const gm_cuda_module **out, gm_err *err) {
    pthread_once(&g_module.once, module_open_once);
    *out = __atomic_load_n(&g_module.module, __ATOMIC_ACQUIRE);
    if (!*out) return gm_fail(err, g_module.err.code, "%s", g_module.err.msg);
    return GLMOE_OK;
}

const char *cuda_module_path(void) {
    /* set once, inside the once routine; reading it before any cuda_module_get is NULL */
    return __atomic_load_n(&g_module.module, __ATOMIC_ACQUIRE) ? g_module.path : NULL;
}

/* ---- backend/cuda/cuda_backend.h, served through the module ---------------------------------- */

glmoe_status cuda_backend_create_ex(gm_backend **out, const cuda_backend_options *opt, gm_err *err) {
    *out = NULL;
    cuda_backend_options o = opt ? *opt : cuda_backend_options_default();
    /* the driver first: without a GPU, nothing of CUDA's is loaded */
    glmoe_status s = gm_cuda_driver_check(o.device_index, NULL, 0, err);
    if (s) return s;
    const gm_cuda_module *m;
    if ((s = cuda_module_get(&m, err))) return s;
    return m->create_ex(out, &o, err);
}

glmoe_status cuda_backend_create(gm_backend **out, int device_index, gm_err *err) {
    cuda_backend_options o = cuda_backend_options_default();
    o.device_index = device_index;
    return cuda_backend_create_ex(out, &o, err);
}

void cuda_backend_counters_get(cuda_backend_counters *out) {
    const gm_cuda_module *m = __atomic_load_n(&g_module.module, __ATOMIC_ACQUIRE);
    if (m) {
        m->counters_get(out);
    } else {
        memset(out, 0, sizeof *out); /* no module, no CUDA backend yet: nothing counted */
    }
}

bool cuda_backend_is(const gm_backend *be) { return be && be->ops && be->ops->name && !strcmp(be->ops->name, "cuda"); }

glmoe_status cuda_comm_create(gm_comm **ranks, const int32_t *devices, int32_t n, gm_err *err) {
    const gm_cuda_module *m;
    glmoe_status s = cuda_module_get(&m, err);
    if (s) return s;
    if (!m->comm_create)
        return gm_fail(err, GLMOE_E_UNSUPPORTED,
                       "cuda: this build of glmoe cannot split a model over GPUs: it was built without NCCL's header "
                       "(nccl.h; tools/get_nccl.sh fetches it, GLMOE_NCCL_INCLUDE names its folder)");
    return m->comm_create(ranks, devices, n, err);
}

glmoe_status cuda_backend_probe(gm_backend *be, cuda_backend_probe_result *out, gm_err *err) {
    const gm_cuda_module *m = __atomic_load_n(&g_module.module, __ATOMIC_ACQUIRE);
    if (!cuda_backend_is(be) || !m) return gm_fail(err, GLMOE_E_ARG, "cuda: probe: not a CUDA backend");
    return m->probe(be, out, err);
}
#endif
