/* cmd_info.c — `glmoe info`: the configuration as understood, parameter counts, bytes per dtype. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const help =
    "usage: glmoe info -m DIR [options]\n"
    "\n"
    "Loads the model and prints its configuration as glmoe understood it, parameter counts,\n"
    "the weights by kind and format (bits and group size of quantized ones) with their bytes,\n"
    "and the tensors that were skipped.\n"
    "\n";

int cmd_info(int argc, char **argv) {
    const char *cmd = "info";
    cli_model_opts mo = {0};
    for (int i = 1; i < argc; i++) {
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return cli_help(help, true);
        return cli_bad_option(cmd, argv[i], help, true);
    }
    glmoe_model *model = NULL;
    glmoe_context *ctx = NULL;
    if (mo.n_ctx == 0) mo.n_ctx = 1; /* info needs no cache */
    if (!cli_open(cmd, &mo, &model, &ctx)) return CLI_EXIT_FAIL;
    glmoe_model_info m;
    glmoe_model_get_info(model, &m);
    printf("model              %s\n", m.dir);
    printf("architecture       %s\n", m.architecture);
    printf("backend            %s\n", m.backend);
    printf("dtype              %s\n", m.dtype[0] ? m.dtype : "(not given)");
    printf("vocab_size         %d\n", m.vocab_size);
    printf("hidden_size        %d\n", m.hidden_size);
    printf("layers             %d (%d dense, %d MoE)\n", m.n_layers, m.n_dense_layers, m.n_layers - m.n_dense_layers);
    printf("attention          %d query heads, %d KV heads (GQA %d), head_dim %d, rotary dims %d, qk-norm %s\n",
           m.n_heads, m.n_kv_heads, m.n_heads / m.n_kv_heads, m.head_dim, m.rotary_dim, m.use_qk_norm ? "on" : "off");
    printf("rope_theta         %g\n", (double)m.rope_theta);
    printf("rms_norm_eps       %g\n", (double)m.rms_norm_eps);
    printf("dense MLP width    %d\n", m.intermediate_size);
    printf("experts            %d routed (top %d, groups %d keep %d), %d shared, width %d\n", m.n_experts,
           m.n_experts_per_tok, m.n_group, m.topk_group, m.n_shared_experts, m.moe_intermediate_size);
    printf("routing            norm_topk_prob %s, routed_scaling_factor %g\n", m.norm_topk_prob ? "true" : "false",
           (double)m.routed_scaling_factor);
    printf("max positions      %d\n", m.max_position_embeddings);
    printf("eos ids           ");
    for (int i = 0; i < m.n_eos_ids; i++) printf(" %d", m.eos_ids[i]);
    printf("%s\n", m.n_eos_ids ? "" : " (none)");
    printf("parameters         %llu (%.3f B), active per token %llu (%.3f B)\n", (unsigned long long)m.n_params,
           (double)m.n_params / 1e9, (unsigned long long)m.n_params_active, (double)m.n_params_active / 1e9);
    printf("bytes by dtype     BF16 %llu, F16 %llu, F32 %llu, quantized %llu\n", (unsigned long long)m.bytes_bf16,
           (unsigned long long)m.bytes_f16, (unsigned long long)m.bytes_f32, (unsigned long long)m.bytes_quantized);
    printf("weights            %-17s %-22s %8s %14s %14s\n", "kind", "format", "tensors", "parameters", "bytes");
    for (int32_t i = 0; i < m.n_weight_groups; i++) {
        const glmoe_weight_group *g = &m.weight_groups[i];
        printf("                   %-17s %-22s %8llu %14llu %14llu\n", g->kind, g->format,
               (unsigned long long)g->n_tensors, (unsigned long long)g->n_params, (unsigned long long)g->bytes);
    }
    if (m.n_quantized_on_load) printf("quantized on load  %d weights\n", m.n_quantized_on_load);
    if (m.has_mtp)
        printf("MTP layer          loaded: %llu parameters, drafts for speculative decoding (--draft)\n",
               (unsigned long long)m.n_params_mtp);
    printf("skipped            %d tensors (%llu bytes) of layers >= %d (multi-token prediction)\n",
           m.n_tensors_skipped, (unsigned long long)m.bytes_skipped, m.n_layers);
    printf("unused             %d tensors\n", m.n_tensors_unused);
    printf("realigned          %llu bytes (tensors the file left unaligned)\n", (unsigned long long)m.bytes_realigned);
    printf("load time          %.3f s\n", m.load_seconds);
    printf("memory             %llu bytes allocated for weights, peak RSS %.1f MB\n",
           (unsigned long long)m.resident_bytes, (double)cli_peak_rss() / 1e6);
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    return 0;
}
