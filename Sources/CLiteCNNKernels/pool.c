// NHWC pooling, vectorized over channels (the compiler vectorizes the channel loops for each target).
//
// Windows are clipped to the image; `g->oh`, `g->ow` are given by the caller (floor or ceil mode). Max pooling of a
// window with no pixel inside the image writes -inf (cannot happen with PyTorch/ONNX output-size rules).
#include "internal.h"
#include <math.h>

LCNN_INLINE void maxpool_body(const lcnn_conv_geom *g, const float *input, float *output, int64_t row0, int64_t row1) {
    const int64_t C = g->ic;
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            float *restrict o = output + (row * g->ow + ox) * C;
            for (int64_t c = 0; c < C; c++) o[c] = -INFINITY;
            for (int64_t ky = 0; ky < g->kh; ky++) {
                int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy < 0 || iy >= g->ih) continue;
                for (int64_t kx = 0; kx < g->kw; kx++) {
                    int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                    if (ix < 0 || ix >= g->iw) continue;
                    const float *restrict ip = input + ((n * g->ih + iy) * g->iw + ix) * C;
                    for (int64_t c = 0; c < C; c++) o[c] = ip[c] > o[c] ? ip[c] : o[c];
                }
            }
        }
    }
}

LCNN_INLINE void avgpool_body(const lcnn_conv_geom *g, const float *input, float *output, int64_t row0, int64_t row1,
                              int64_t paddedHeight, int64_t paddedWidth, int countIncludePad) {
    const int64_t C = g->ic;
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            float *restrict o = output + (row * g->ow + ox) * C;
            for (int64_t c = 0; c < C; c++) o[c] = 0;
            int64_t valid = 0, inPadded = 0;
            for (int64_t ky = 0; ky < g->kh; ky++) {
                int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy + g->pt >= paddedHeight) continue;
                for (int64_t kx = 0; kx < g->kw; kx++) {
                    int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                    if (ix + g->pl >= paddedWidth) continue;
                    inPadded++;
                    if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw) continue;
                    valid++;
                    const float *restrict ip = input + ((n * g->ih + iy) * g->iw + ix) * C;
                    for (int64_t c = 0; c < C; c++) o[c] += ip[c];
                }
            }
            int64_t count = countIncludePad ? inPadded : valid;
            float scale = count > 0 ? 1.0f / (float)count : 0;
            for (int64_t c = 0; c < C; c++) o[c] *= scale;
        }
    }
}

LCNN_INLINE void gap_body(const float *input, int64_t images, int64_t hw, int64_t C, float *output) {
    float scale = hw > 0 ? 1.0f / (float)hw : 0;
    for (int64_t n = 0; n < images; n++) {
        float *restrict o = output + n * C;
        for (int64_t c = 0; c < C; c++) o[c] = 0;
        const float *image = input + n * hw * C;
        for (int64_t p = 0; p < hw; p++) {
            const float *restrict ip = image + p * C;
            for (int64_t c = 0; c < C; c++) o[c] += ip[c];
        }
        for (int64_t c = 0; c < C; c++) o[c] *= scale;
    }
}

#if LCNN_X86
#define POOL_VARIANTS(suffix, attr)                                                                                     \
    attr static void maxpool_##suffix(const lcnn_conv_geom *g, const float *i, float *o, int64_t r0, int64_t r1) {      \
        maxpool_body(g, i, o, r0, r1);                                                                                  \
    }                                                                                                                   \
    attr static void avgpool_##suffix(const lcnn_conv_geom *g, const float *i, float *o, int64_t r0, int64_t r1,        \
                                      int64_t ph, int64_t pw, int cip) {                                                \
        avgpool_body(g, i, o, r0, r1, ph, pw, cip);                                                                     \
    }                                                                                                                   \
    attr static void gap_##suffix(const float *i, int64_t n, int64_t hw, int64_t c, float *o) { gap_body(i, n, hw, c, o); }
POOL_VARIANTS(avx2, LCNN_TARGET_AVX2)
POOL_VARIANTS(avx512, LCNN_TARGET_AVX512)

/// The input pixels of output pixel (n, oy, ox)'s window that lie inside the image (at most kh·kw, which the caller
/// bounds), as pointers to their channel runs; returns their number.
LCNN_INLINE int pool_window_taps(const lcnn_conv_geom *g, const float *input, int64_t n, int64_t oy, int64_t ox,
                                 const float **taps) {
    const int64_t C = g->ic;
    int nt = 0;
    for (int64_t ky = 0; ky < g->kh; ky++) {
        int64_t iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->ih) continue;
        const float *line = input + (n * g->ih + iy) * g->iw * C;
        for (int64_t kx = 0; kx < g->kw; kx++) {
            int64_t ix = ox * g->sw - g->pl + kx * g->dw;
            if (ix < 0 || ix >= g->iw) continue;
            taps[nt++] = line + ix * C;
        }
    }
    return nt;
}

/// Max pooling with the window's taps clipped once per output pixel (ceil-mode and padding overhang drop out) and
/// 32 channels at a time kept in registers across all taps: one load per tap and channel, one store per output.
LCNN_TARGET_AVX2 static void maxpool_blocked_avx2(const lcnn_conv_geom *g, const float *input, float *output,
                                                  int64_t row0, int64_t row1) {
    enum { MAX_TAPS = 64 };
    const int64_t C = g->ic;
    if (g->kh * g->kw > MAX_TAPS) { maxpool_avx2(g, input, output, row0, row1); return; }
    const float *taps[MAX_TAPS];
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            float *o = output + (row * g->ow + ox) * C;
            const int nt = pool_window_taps(g, input, n, oy, ox, taps);
            int64_t c = 0;
            for (; c + 32 <= C; c += 32) {
                __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
                for (int t = 0; t < nt; t++) {
                    const float *ip = taps[t] + c;
                    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(ip));
                    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(ip + 8));
                    m2 = _mm256_max_ps(m2, _mm256_loadu_ps(ip + 16));
                    m3 = _mm256_max_ps(m3, _mm256_loadu_ps(ip + 24));
                }
                _mm256_storeu_ps(o + c, m0);
                _mm256_storeu_ps(o + c + 8, m1);
                _mm256_storeu_ps(o + c + 16, m2);
                _mm256_storeu_ps(o + c + 24, m3);
            }
            for (; c + 8 <= C; c += 8) {
                __m256 m0 = _mm256_set1_ps(-INFINITY);
                for (int t = 0; t < nt; t++) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(taps[t] + c));
                _mm256_storeu_ps(o + c, m0);
            }
            for (; c < C; c++) {
                float m = -INFINITY;
                for (int t = 0; t < nt; t++) m = taps[t][c] > m ? taps[t][c] : m;
                o[c] = m;
            }
        }
    }
}

/// `dst[0 ..< count] = max over t < n of srcs[t][0 ..< count]`, 64 floats at a time in four accumulators, then 16 at a
/// time (the last masked). `n ≥ 1`.
LCNN_TARGET_AVX512 LCNN_INLINE void max_of_vectors_avx512(const float *const *srcs, int n, int64_t count, float *dst) {
    int64_t c = 0;
    for (; c + 64 <= count; c += 64) {
        __m512 m[4];
#pragma clang loop unroll(full)
        for (int v = 0; v < 4; v++) m[v] = _mm512_loadu_ps(srcs[0] + c + 16 * v);
        for (int t = 1; t < n; t++) {
#pragma clang loop unroll(full)
            for (int v = 0; v < 4; v++) m[v] = _mm512_max_ps(m[v], _mm512_loadu_ps(srcs[t] + c + 16 * v));
        }
#pragma clang loop unroll(full)
        for (int v = 0; v < 4; v++) _mm512_storeu_ps(dst + c + 16 * v, m[v]);
    }
    for (; c < count; c += 16) {
        const __mmask16 k = lcnn_avx512_lanes(count - c);
        __m512 m = _mm512_maskz_loadu_ps(k, srcs[0] + c);
        for (int t = 1; t < n; t++) m = _mm512_max_ps(m, _mm512_maskz_loadu_ps(k, srcs[t] + c));
        _mm512_mask_storeu_ps(dst + c, k, m);
    }
}

/// Max pooling in two passes per output row (windows of up to 64 × 64): the maximum over the window's input rows,
/// taken over whole rows as flat `iw·C` vectors into a row buffer that stays in L1/L2, then the maximum over each
/// window's columns in that buffer (interior windows through a fixed-size loop, border windows clipped). The first
/// pass streams its rows front to back, where reading each window's 3×3 pixels straight from the input jumped between
/// three rows 256 bytes at a time: SqueezeNet's first pool (111² × 64 → 55²) ran at 33 GB/s that way.
LCNN_TARGET_AVX512 static void maxpool_separable_avx512(const lcnn_conv_geom *g, const float *input, float *output,
                                                        int64_t row0, int64_t row1) {
    enum { MAX_ROWS = 64 };
    const int64_t C = g->ic, rowFloats = g->iw * C;
    float *rowMax = lcnn_scratch(LCNN_SCRATCH_POOL, rowFloats);
    for (int64_t row = row0; row < row1; row++) {
        const int64_t n = row / g->oh, oy = row % g->oh;
        const float *rows[MAX_ROWS];
        int nr = 0;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            const int64_t iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy >= 0 && iy < g->ih) rows[nr++] = input + (n * g->ih + iy) * rowFloats;
        }
        float *o = output + row * g->ow * C;
        if (nr == 0) {  // a window entirely in the padding (not produced by ONNX's output-size rules)
            for (int64_t i = 0; i < g->ow * C; i++) o[i] = -INFINITY;
            continue;
        }
        const float *source = rows[0];
        if (nr > 1) {
            max_of_vectors_avx512(rows, nr, rowFloats, rowMax);
            source = rowMax;
        }
        // Columns whose windows lie inside the row take the fixed-size loop; the others clip their windows.
        int64_t inner0 = (g->pl + g->sw - 1) / g->sw, inner1 = (g->iw - (g->kw - 1) * g->dw + g->pl - 1) / g->sw + 1;
        if (inner0 > g->ow) inner0 = g->ow;
        if (inner1 > g->ow) inner1 = g->ow;
        if (inner1 < inner0) inner1 = inner0;
        for (int64_t ox = 0; ox < g->ow; ox++, o += C) {
            const float *taps[MAX_ROWS];
            int nt = 0;
            if (ox >= inner0 && ox < inner1 && C % 16 == 0) {
                const float *first = source + (ox * g->sw - g->pl) * C, *end = first + g->kw * g->dw * C;
                const int64_t step = g->dw * C;
                int64_t c = 0;
                for (; c + 64 <= C; c += 64) {
                    __m512 m0 = _mm512_loadu_ps(first + c), m1 = _mm512_loadu_ps(first + c + 16),
                           m2 = _mm512_loadu_ps(first + c + 32), m3 = _mm512_loadu_ps(first + c + 48);
                    for (const float *t = first + step; t < end; t += step) {
                        m0 = _mm512_max_ps(m0, _mm512_loadu_ps(t + c));
                        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(t + c + 16));
                        m2 = _mm512_max_ps(m2, _mm512_loadu_ps(t + c + 32));
                        m3 = _mm512_max_ps(m3, _mm512_loadu_ps(t + c + 48));
                    }
                    _mm512_storeu_ps(o + c, m0); _mm512_storeu_ps(o + c + 16, m1);
                    _mm512_storeu_ps(o + c + 32, m2); _mm512_storeu_ps(o + c + 48, m3);
                }
                for (; c < C; c += 16) {
                    __m512 m = _mm512_loadu_ps(first + c);
                    for (const float *t = first + step; t < end; t += step) m = _mm512_max_ps(m, _mm512_loadu_ps(t + c));
                    _mm512_storeu_ps(o + c, m);
                }
                continue;
            }
            for (int64_t kx = 0; kx < g->kw && nt < MAX_ROWS; kx++) {
                const int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                if (ix >= 0 && ix < g->iw) taps[nt++] = source + ix * C;
            }
            if (nt > 0) max_of_vectors_avx512(taps, nt, C, o);
            else for (int64_t c = 0; c < C; c++) o[c] = -INFINITY;
        }
    }
}

#endif

void lcnn_maxpool_nhwc_rows(const lcnn_conv_geom *g, const float *input, float *output, int64_t row0, int64_t row1) {
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) {
        if (g->kh <= 64 && g->kw <= 64) maxpool_separable_avx512(g, input, output, row0, row1);
        else maxpool_avx512(g, input, output, row0, row1);
        return;
    }
    if (level >= 1) { maxpool_blocked_avx2(g, input, output, row0, row1); return; }
#endif
    maxpool_body(g, input, output, row0, row1);
}

void lcnn_avgpool_nhwc_rows(const lcnn_conv_geom *g, const float *input, float *output, int64_t row0, int64_t row1,
                            int64_t paddedHeight, int64_t paddedWidth, int countIncludePad) {
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) { avgpool_avx512(g, input, output, row0, row1, paddedHeight, paddedWidth, countIncludePad); return; }
    if (level >= 1) { avgpool_avx2(g, input, output, row0, row1, paddedHeight, paddedWidth, countIncludePad); return; }
#endif
    avgpool_body(g, input, output, row0, row1, paddedHeight, paddedWidth, countIncludePad);
}

void lcnn_global_avgpool_nhwc(const float *input, int64_t images, int64_t hw, int64_t channels, float *output) {
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) { gap_avx512(input, images, hw, channels, output); return; }
    if (level >= 1) { gap_avx2(input, images, hw, channels, output); return; }
#endif
    gap_body(input, images, hw, channels, output);
}
