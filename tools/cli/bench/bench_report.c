/*
 * bench_report.c — what `glmoe bench` writes besides its table: the JSON document (the schema
 * shared with tools/bench/peer_transformers.py and tools/bench/compare.py) and an SVG plot of
 * the prefill sweep, tokens per second against prompt length on a log-2 axis.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "cli.h"

bool bench_write_json(FILE *f, const char *path, json_t *doc, char *err, size_t err_len) {
    json_dumpf(doc, f, JSON_INDENT(1) | JSON_REAL_PRECISION(6)); /* a failed write leaves ferror set */
    return cli_output_close(f, path, err, err_len);
}

/* A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, >= v. */
static double nice_ceil(double v) {
    if (v <= 0) return 1;
    double p = pow(10, floor(log10(v)));
    for (int i = 0; i < 3; i++) {
        double m = (double[]){1, 2, 5}[i] * p;
        if (m >= v) return m;
    }
    return 10 * p;
}

bool bench_write_svg(FILE *f, const char *path, const char *title, const bench_point *pts, int n, char *err,
                     size_t err_len) {
    const double W = 760, Hh = 420, L = 80, R = 20, T = 40, B = 50; /* size and margins */
    double xmax = 1, ymax = 0;
    for (int i = 0; i < n; i++) {
        if (pts[i].tokens > xmax) xmax = pts[i].tokens;
        double tps = pts[i].ms > 0 ? pts[i].tokens / (pts[i].ms * 1e-3) : 0;
        if (tps > ymax) ymax = tps;
    }
    ymax = nice_ceil(ymax);
    const double lx = log2(xmax > 1 ? xmax : 2);
#define PX(t) (L + (W - L - R) * log2(t) / lx)
#define PY(v) (Hh - B - (Hh - T - B) * (v) / ymax)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, Hh);
    fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"14\">", L);
    for (const char *p = title; *p; p++) { /* escape for XML */
        if (*p == '<') fputs("&lt;", f);
        else if (*p == '&') fputs("&amp;", f);
        else if (*p == '>') fputs("&gt;", f);
        else fputc(*p, f);
    }
    fputs("</text>\n", f);
    for (int i = 0; i <= 5; i++) { /* horizontal grid and y labels */
        double v = ymax * i / 5;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, PY(v), W - R, PY(v));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", L - 6, PY(v) + 4, v);
    }
    for (double t = 1; t <= xmax; t *= 2) { /* vertical grid and x labels */
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", PX(t), T, PX(t), Hh - B);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", PX(t), Hh - B + 16, t);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">prompt length (tokens)</text>\n", (L + W - R) / 2,
            Hh - 12);
    fprintf(f, "<text x=\"16\" y=\"%.1f\" transform=\"rotate(-90 16 %.1f)\" text-anchor=\"middle\">prefill tokens/s</text>\n",
            (T + Hh - B) / 2, (T + Hh - B) / 2);
    fputs("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"", f);
    for (int i = 0; i < n; i++)
        if (pts[i].ms > 0) fprintf(f, "%.1f,%.1f ", PX(pts[i].tokens), PY(pts[i].tokens / (pts[i].ms * 1e-3)));
    fputs("\"/>\n</svg>\n", f);
#undef PX
#undef PY
    return cli_output_close(f, path, err, err_len);
}
