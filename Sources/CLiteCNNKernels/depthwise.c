// Depthwise 2-D convolution (one filter per channel) on NHWC activations, vectorized over channels.
//
// Weights are tap-major `[kh·kw][C]` so one tap of a block of channels is one vector load. The forward kernels
// keep four output pixels of a channel block in registers over the interior of a row (every tap inside the image):
// AVX-512 16 channels per block with masked tails, AVX2 16 channels (eight accumulators) then 8 with a lane mask.
// 3×3 and 5×5 at stride 1 and 2 are compiled as specializations; borders and any other kernel size, stride or
// dilation take the generic path. Backward input gathers the (output pixel, tap) pairs of each input pixel and sums
// them in registers (AVX2, also used on AVX-512 CPUs). Backward weight, and the portable level, are plain channel
// loops that the compiler vectorizes for each target.
#include "internal.h"

#define dw_activate lcnn_activate

/// The taps of output pixel (oy, ox) that fall inside the image — kernel rows `[ky0, ky1)` (already clipped) and
/// columns clipped here — as input and tap-major weight pointers (`ips[t]`, `wps[t]`); returns their number (≤ 64,
/// which the caller checks).
LCNN_INLINE int dw_border_taps(const lcnn_conv_geom *g, const float *image, const float *wt, int64_t oy, int64_t ox,
                               int64_t ky0, int64_t ky1, int64_t kw, int64_t sw, const float *ips[64],
                               const float *wps[64]) {
    const int64_t C = g->ic, dw = g->dw, pl = g->pl, rowStride = g->iw * C;
    int64_t kx0 = 0, kx1 = kw;
    while (kx0 < kx1 && ox * sw - pl + kx0 * dw < 0) kx0++;
    while (kx1 > kx0 && ox * sw - pl + (kx1 - 1) * dw >= g->iw) kx1--;
    const float *base = image + (oy * g->sh - g->pt) * rowStride + (ox * sw - pl) * C;
    int nt = 0;
    for (int64_t ky = ky0; ky < ky1; ky++)
        for (int64_t kx = kx0; kx < kx1; kx++) {
            ips[nt] = base + ky * g->dh * rowStride + kx * dw * C;
            wps[nt] = wt + (ky * kw + kx) * C;
            nt++;
        }
    return nt;
}

/// The kernel rows of output row `oy` inside the image, `[*ky0, *ky1)`, and the input rows the next output row reads
/// first (its window's new bottom rows, `[*next0, *next0 + *nextRows)`; none with dilation): the row kernels prefetch
/// their columns under each block so that a map larger than the cache streams in ahead of use.
LCNN_INLINE void dw_row_span(const lcnn_conv_geom *g, int64_t oy, int64_t *ky0, int64_t *ky1, int64_t *next0,
                             int64_t *nextRows) {
    *ky0 = 0; *ky1 = g->kh;
    while (*ky0 < *ky1 && oy * g->sh - g->pt + *ky0 * g->dh < 0) (*ky0)++;
    while (*ky1 > *ky0 && oy * g->sh - g->pt + (*ky1 - 1) * g->dh >= g->ih) (*ky1)--;
    *next0 = 0; *nextRows = 0;
    if (oy + 1 < g->oh && g->dh == 1) {
        int64_t last = (oy + 1) * g->sh - g->pt + g->kh - 1, first = oy * g->sh - g->pt + g->kh;
        if (first < (oy + 1) * g->sh - g->pt) first = (oy + 1) * g->sh - g->pt;
        if (first < 0) first = 0;
        if (last >= g->ih) last = g->ih - 1;
        if (last >= first) { *next0 = first; *nextRows = last - first + 1; }
    }
}

// MARK: - Generic bodies (vectorized by the compiler per target)

LCNN_INLINE void dw_forward_rows_body(const lcnn_conv_geom *g, const float *input, const float *wt,
                                      const float *bias, int act, float *output, int64_t row0, int64_t row1) {
    const int64_t C = g->ic;
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            float *restrict o = output + (row * g->ow + ox) * C;
            if (bias) for (int64_t c = 0; c < C; c++) o[c] = bias[c];
            else for (int64_t c = 0; c < C; c++) o[c] = 0;
            for (int64_t ky = 0; ky < g->kh; ky++) {
                int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy < 0 || iy >= g->ih) continue;
                for (int64_t kx = 0; kx < g->kw; kx++) {
                    int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                    if (ix < 0 || ix >= g->iw) continue;
                    const float *restrict ip = input + ((n * g->ih + iy) * g->iw + ix) * C;
                    const float *restrict wp = wt + (ky * g->kw + kx) * C;
                    for (int64_t c = 0; c < C; c++) o[c] += ip[c] * wp[c];
                }
            }
            if (act != LCNN_ACT_NONE) for (int64_t c = 0; c < C; c++) o[c] = dw_activate(o[c], act);
        }
    }
}

LCNN_INLINE void dw_backward_input_rows_body(const lcnn_conv_geom *g, const float *gradOutput, const float *wt,
                                             float *gradInput, int64_t row0, int64_t row1) {
    const int64_t C = g->ic;
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->ih, iy = row % g->ih;
        for (int64_t ix = 0; ix < g->iw; ix++) {
            float *restrict d = gradInput + (row * g->iw + ix) * C;
            for (int64_t c = 0; c < C; c++) d[c] = 0;
            for (int64_t ky = 0; ky < g->kh; ky++) {
                int64_t t = iy + g->pt - ky * g->dh;
                if (t < 0 || t % g->sh != 0 || t / g->sh >= g->oh) continue;
                int64_t oy = t / g->sh;
                for (int64_t kx = 0; kx < g->kw; kx++) {
                    int64_t u = ix + g->pl - kx * g->dw;
                    if (u < 0 || u % g->sw != 0 || u / g->sw >= g->ow) continue;
                    int64_t ox = u / g->sw;
                    const float *restrict gp = gradOutput + ((n * g->oh + oy) * g->ow + ox) * C;
                    const float *restrict wp = wt + (ky * g->kw + kx) * C;
                    for (int64_t c = 0; c < C; c++) d[c] += gp[c] * wp[c];
                }
            }
        }
    }
}

LCNN_INLINE void dw_backward_weight_rows_body(const lcnn_conv_geom *g, const float *input, const float *gradOutput,
                                              float *gw, int64_t row0, int64_t row1) {
    const int64_t C = g->ic;
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            const float *restrict gp = gradOutput + (row * g->ow + ox) * C;
            for (int64_t ky = 0; ky < g->kh; ky++) {
                int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy < 0 || iy >= g->ih) continue;
                for (int64_t kx = 0; kx < g->kw; kx++) {
                    int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                    if (ix < 0 || ix >= g->iw) continue;
                    const float *restrict ip = input + ((n * g->ih + iy) * g->iw + ix) * C;
                    float *restrict acc = gw + (ky * g->kw + kx) * C;
                    for (int64_t c = 0; c < C; c++) acc[c] += gp[c] * ip[c];
                }
            }
        }
    }
}

static void dw_forward_portable(const lcnn_conv_geom *g, const float *input, const float *wt, const float *bias,
                                int act, float *output, int64_t row0, int64_t row1) {
    dw_forward_rows_body(g, input, wt, bias, act, output, row0, row1);
}
static void dw_backward_input_portable(const lcnn_conv_geom *g, const float *gradOutput, const float *wt,
                                       float *gradInput, int64_t row0, int64_t row1) {
    dw_backward_input_rows_body(g, gradOutput, wt, gradInput, row0, row1);
}
static void dw_backward_weight_portable(const lcnn_conv_geom *g, const float *input, const float *gradOutput,
                                        float *gw, int64_t row0, int64_t row1) {
    dw_backward_weight_rows_body(g, input, gradOutput, gw, row0, row1);
}

#if LCNN_X86
LCNN_TARGET_AVX2
static void dw_backward_weight_avx2(const lcnn_conv_geom *g, const float *input, const float *gradOutput,
                                    float *gw, int64_t row0, int64_t row1) {
    dw_backward_weight_rows_body(g, input, gradOutput, gw, row0, row1);
}
LCNN_TARGET_AVX512
static void dw_backward_weight_avx512(const lcnn_conv_geom *g, const float *input, const float *gradOutput,
                                      float *gw, int64_t row0, int64_t row1) {
    dw_backward_weight_rows_body(g, input, gradOutput, gw, row0, row1);
}

// MARK: - AVX2 backward input

/// Input-gradient rows with AVX2: per input pixel the contributing (output pixel, tap) pairs are listed once, then
/// each block of channels sums them in registers (16 channels at a time, then 8 with a lane mask).
LCNN_TARGET_AVX2
static void dw_backward_input_avx2(const lcnn_conv_geom *g, const float *gradOutput, const float *wt,
                                   float *gradInput, int64_t row0, int64_t row1) {
    enum { MAX_TAPS = 64 };
    const int64_t C = g->ic, C16 = C / 16 * 16;
    if (g->kh * g->kw > MAX_TAPS) {
        dw_backward_input_rows_body(g, gradOutput, wt, gradInput, row0, row1);
        return;
    }
    const float *gps[MAX_TAPS], *wps[MAX_TAPS];
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->ih, iy = row % g->ih;
        for (int64_t ix = 0; ix < g->iw; ix++) {
            int taps = 0;
            for (int64_t ky = 0; ky < g->kh; ky++) {
                int64_t t = iy + g->pt - ky * g->dh;
                if (t < 0 || t % g->sh != 0 || t / g->sh >= g->oh) continue;
                int64_t oy = t / g->sh;
                for (int64_t kx = 0; kx < g->kw; kx++) {
                    int64_t u = ix + g->pl - kx * g->dw;
                    if (u < 0 || u % g->sw != 0 || u / g->sw >= g->ow) continue;
                    gps[taps] = gradOutput + ((n * g->oh + oy) * g->ow + u / g->sw) * C;
                    wps[taps] = wt + (ky * g->kw + kx) * C;
                    taps++;
                }
            }
            float *d = gradInput + (row * g->iw + ix) * C;
            for (int64_t cb = 0; cb < C16; cb += 16) {
                __m256 a0 = _mm256_setzero_ps(), a1 = a0;
                for (int t = 0; t < taps; t++) {
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(gps[t] + cb), _mm256_loadu_ps(wps[t] + cb), a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(gps[t] + cb + 8), _mm256_loadu_ps(wps[t] + cb + 8), a1);
                }
                _mm256_storeu_ps(d + cb, a0);
                _mm256_storeu_ps(d + cb + 8, a1);
            }
            for (int64_t cb = C16; cb < C; cb += 8) {
                __m256i mask = lcnn_avx2_lane_mask(C - cb);
                __m256 a0 = _mm256_setzero_ps();
                for (int t = 0; t < taps; t++)
                    a0 = _mm256_fmadd_ps(_mm256_maskload_ps(gps[t] + cb, mask), _mm256_maskload_ps(wps[t] + cb, mask), a0);
                _mm256_maskstore_ps(d + cb, mask, a0);
            }
        }
    }
}

// MARK: - AVX2 forward

LCNN_TARGET_AVX2
LCNN_INLINE __m256 dw256_activate(__m256 v, int act) { return lcnn_avx2_activate(v, act); }

/// Eight consecutive output pixels × eight channels with every tap inside the image (dilation 1): each input column
/// is loaded once per kernel row and used for every (pixel, tap) pair that reads it. `KW`, `SW` are compile-time.
///
/// `reverse` walks the kernel rows bottom-up. Consecutive 8-channel blocks alternate directions so that the second
/// half of each 64-byte input line is read while the rows read last are still in L1: when C is a multiple of 128
/// floats every pixel of a window maps to the same few L1 sets (pixels 2 KB apart, image rows a multiple of 4 KB
/// apart), only the last ~16 lines touched survive, and reading both halves top-down loaded every line twice.
LCNN_TARGET_AVX2
LCNN_INLINE void dw256_block8(const float *base, int64_t rowStep, int64_t rows, const float *wrow, int64_t C,
                              const float *bias, int act, float *out, __m256i mask, const int masked,
                              const int KW, const int SW, int reverse) {
    __m256 acc[8];
    __m256 b = bias ? (masked ? _mm256_maskload_ps(bias, mask) : _mm256_loadu_ps(bias)) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
    for (int j = 0; j < 8; j++) acc[j] = b;
    for (int64_t step = 0; step < rows; step++) {
        const int64_t ky = reverse ? rows - 1 - step : step;
        const float *ip = base + ky * rowStep;
        const float *wp = wrow + ky * KW * C;
        __m256 w[KW];
#pragma clang loop unroll(full)
        for (int kx = 0; kx < KW; kx++) w[kx] = masked ? _mm256_maskload_ps(wp + kx * C, mask) : _mm256_loadu_ps(wp + kx * C);
#pragma clang loop unroll(full)
        for (int i = 0; i < 7 * SW + KW; i++) {
            __m256 v = masked ? _mm256_maskload_ps(ip + i * C, mask) : _mm256_loadu_ps(ip + i * C);
#pragma clang loop unroll(full)
            for (int kx = 0; kx < KW; kx++) {
                int t = i - kx;
                if (t >= 0 && t % SW == 0 && t / SW < 8) acc[t / SW] = _mm256_fmadd_ps(v, w[kx], acc[t / SW]);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int j = 0; j < 8; j++) {
        __m256 v = dw256_activate(acc[j], act);
        if (masked) _mm256_maskstore_ps(out + j * C, mask, v);
        else _mm256_storeu_ps(out + j * C, v);
    }
}

/// One output row with AVX2: interior pixels four at a time over 16-channel blocks (eight accumulators), then
/// 8-channel blocks with a lane mask for the tail; border pixels one at a time.
LCNN_TARGET_AVX2
LCNN_INLINE void dw256_row(const lcnn_conv_geom *g, const float *input, const float *wt, const float *bias, int act,
                           float *out, int64_t n, int64_t oy, const int64_t KW, const int64_t SW) {
    const int64_t C = g->ic, kw = KW ? KW : g->kw, sw = SW ? SW : g->sw, dw = g->dw, pl = g->pl;
    const int64_t rowStride = g->iw * C, C16 = C / 16 * 16;
    const float *image = input + n * g->ih * rowStride;
    int64_t lo = (pl + sw - 1) / sw;
    int64_t span = g->iw - 1 + pl - (kw - 1) * dw;
    int64_t hi = span < 0 ? 0 : span / sw + 1;
    if (hi > g->ow) hi = g->ow;
    if (lo > hi) lo = hi;
    int64_t ky0, ky1, next0, nextRows;
    dw_row_span(g, oy, &ky0, &ky1, &next0, &nextRows);
    int64_t ox = 0;
    while (ox < g->ow) {
        if (KW && SW && dw == 1 && ox >= lo && ox < hi && hi - lo >= 8) {
            // The last block of a row may start earlier and recompute a few pixels (same values).
            if (ox + 8 > hi) ox = hi - 8;
            const float *base = image + (oy * g->sh - g->pt + ky0 * g->dh) * rowStride + (ox * sw - pl) * C;
            const float *wrow = wt + ky0 * kw * C;
            __m256i all = _mm256_set1_epi32(-1);
            int64_t cb = 0;
            for (; cb + 8 <= C; cb += 8)
                dw256_block8(base + cb, g->dh * rowStride, ky1 - ky0, wrow + cb, C, bias ? bias + cb : NULL, act,
                             out + ox * C + cb, all, 0, (int)KW, (int)SW, (int)((cb / 8) & 1));
            if (cb < C)
                dw256_block8(base + cb, g->dh * rowStride, ky1 - ky0, wrow + cb, C, bias ? bias + cb : NULL, act,
                             out + ox * C + cb, lcnn_avx2_lane_mask(C - cb), 1, (int)KW, (int)SW, (int)((cb / 8) & 1));
            for (int64_t r = 0; r < nextRows; r++) {
                const char *p = (const char *)(image + (next0 + r) * rowStride + (ox * sw - pl) * C);
                const int64_t bytes = 8 * sw * C * (int64_t)sizeof(float);
                for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
            }
            ox += 8;
        } else if (ox >= lo && ox + 4 <= hi) {
            const float *base = image + (oy * g->sh - g->pt) * rowStride + (ox * sw - pl) * C;
            for (int64_t cb = 0; cb < C16; cb += 16) {
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                if (bias) {
                    a0 = a1 = a2 = a3 = _mm256_loadu_ps(bias + cb);
                    b0 = b1 = b2 = b3 = _mm256_loadu_ps(bias + cb + 8);
                }
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const float *rp = base + ky * g->dh * rowStride + cb;
                    const float *wp = wt + ky * kw * C + cb;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        __m256 w0 = _mm256_loadu_ps(wp + kx * C), w1 = _mm256_loadu_ps(wp + kx * C + 8);
                        const float *ip = rp + kx * dw * C;
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(ip), w0, a0);
                        b0 = _mm256_fmadd_ps(_mm256_loadu_ps(ip + 8), w1, b0);
                        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(ip + sw * C), w0, a1);
                        b1 = _mm256_fmadd_ps(_mm256_loadu_ps(ip + sw * C + 8), w1, b1);
                        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(ip + 2 * sw * C), w0, a2);
                        b2 = _mm256_fmadd_ps(_mm256_loadu_ps(ip + 2 * sw * C + 8), w1, b2);
                        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(ip + 3 * sw * C), w0, a3);
                        b3 = _mm256_fmadd_ps(_mm256_loadu_ps(ip + 3 * sw * C + 8), w1, b3);
                    }
                }
                float *op = out + ox * C + cb;
                _mm256_storeu_ps(op, dw256_activate(a0, act));
                _mm256_storeu_ps(op + 8, dw256_activate(b0, act));
                _mm256_storeu_ps(op + C, dw256_activate(a1, act));
                _mm256_storeu_ps(op + C + 8, dw256_activate(b1, act));
                _mm256_storeu_ps(op + 2 * C, dw256_activate(a2, act));
                _mm256_storeu_ps(op + 2 * C + 8, dw256_activate(b2, act));
                _mm256_storeu_ps(op + 3 * C, dw256_activate(a3, act));
                _mm256_storeu_ps(op + 3 * C + 8, dw256_activate(b3, act));
            }
            for (int64_t cb = C16; cb < C; cb += 8) {
                __m256i mask = lcnn_avx2_lane_mask(C - cb);
                __m256 a0 = bias ? _mm256_maskload_ps(bias + cb, mask) : _mm256_setzero_ps();
                __m256 a1 = a0, a2 = a0, a3 = a0;
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const float *rp = base + ky * g->dh * rowStride + cb;
                    const float *wp = wt + ky * kw * C + cb;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        __m256 w0 = _mm256_maskload_ps(wp + kx * C, mask);
                        const float *ip = rp + kx * dw * C;
                        a0 = _mm256_fmadd_ps(_mm256_maskload_ps(ip, mask), w0, a0);
                        a1 = _mm256_fmadd_ps(_mm256_maskload_ps(ip + sw * C, mask), w0, a1);
                        a2 = _mm256_fmadd_ps(_mm256_maskload_ps(ip + 2 * sw * C, mask), w0, a2);
                        a3 = _mm256_fmadd_ps(_mm256_maskload_ps(ip + 3 * sw * C, mask), w0, a3);
                    }
                }
                float *op = out + ox * C + cb;
                _mm256_maskstore_ps(op, mask, dw256_activate(a0, act));
                _mm256_maskstore_ps(op + C, mask, dw256_activate(a1, act));
                _mm256_maskstore_ps(op + 2 * C, mask, dw256_activate(a2, act));
                _mm256_maskstore_ps(op + 3 * C, mask, dw256_activate(a3, act));
            }
            ox += 4;
        } else if ((ky1 - ky0) * kw <= 64) {
            // Border pixel: the taps inside the image listed once, then summed with two accumulator chains per
            // 8 channels (even and odd taps) so short rows (7×7 maps, 5×5 kernels) are not FMA-latency bound.
            const float *ips[64], *wps[64];
            const int nt = dw_border_taps(g, image, wt, oy, ox, ky0, ky1, kw, sw, ips, wps);
            for (int64_t cb = 0; cb < C16; cb += 16) {
                __m256 a0 = bias ? _mm256_loadu_ps(bias + cb) : _mm256_setzero_ps();
                __m256 a1 = bias ? _mm256_loadu_ps(bias + cb + 8) : _mm256_setzero_ps();
                __m256 e0 = _mm256_setzero_ps(), e1 = e0;
                int t = 0;
                for (; t + 1 < nt; t += 2) {
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(ips[t] + cb), _mm256_loadu_ps(wps[t] + cb), a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(ips[t] + cb + 8), _mm256_loadu_ps(wps[t] + cb + 8), a1);
                    e0 = _mm256_fmadd_ps(_mm256_loadu_ps(ips[t + 1] + cb), _mm256_loadu_ps(wps[t + 1] + cb), e0);
                    e1 = _mm256_fmadd_ps(_mm256_loadu_ps(ips[t + 1] + cb + 8), _mm256_loadu_ps(wps[t + 1] + cb + 8), e1);
                }
                if (t < nt) {
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(ips[t] + cb), _mm256_loadu_ps(wps[t] + cb), a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(ips[t] + cb + 8), _mm256_loadu_ps(wps[t] + cb + 8), a1);
                }
                _mm256_storeu_ps(out + ox * C + cb, dw256_activate(_mm256_add_ps(a0, e0), act));
                _mm256_storeu_ps(out + ox * C + cb + 8, dw256_activate(_mm256_add_ps(a1, e1), act));
            }
            for (int64_t cb = C16; cb < C; cb += 8) {
                __m256i mask = lcnn_avx2_lane_mask(C - cb);
                __m256 a0 = bias ? _mm256_maskload_ps(bias + cb, mask) : _mm256_setzero_ps();
                __m256 e0 = _mm256_setzero_ps();
                int t = 0;
                for (; t + 1 < nt; t += 2) {
                    a0 = _mm256_fmadd_ps(_mm256_maskload_ps(ips[t] + cb, mask), _mm256_maskload_ps(wps[t] + cb, mask), a0);
                    e0 = _mm256_fmadd_ps(_mm256_maskload_ps(ips[t + 1] + cb, mask), _mm256_maskload_ps(wps[t + 1] + cb, mask), e0);
                }
                if (t < nt)
                    a0 = _mm256_fmadd_ps(_mm256_maskload_ps(ips[t] + cb, mask), _mm256_maskload_ps(wps[t] + cb, mask), a0);
                _mm256_maskstore_ps(out + ox * C + cb, mask, dw256_activate(_mm256_add_ps(a0, e0), act));
            }
            ox += 1;
        } else {
            // Border pixel: taps clipped to the image, 16 channels at a time, then 8 with a lane mask.
            int64_t kx0 = 0, kx1 = kw;
            while (kx0 < kx1 && ox * sw - pl + kx0 * dw < 0) kx0++;
            while (kx1 > kx0 && ox * sw - pl + (kx1 - 1) * dw >= g->iw) kx1--;
            const float *base = image + (oy * g->sh - g->pt) * rowStride + (ox * sw - pl) * C;
            for (int64_t cb = 0; cb < C16; cb += 16) {
                __m256 a0 = bias ? _mm256_loadu_ps(bias + cb) : _mm256_setzero_ps();
                __m256 a1 = bias ? _mm256_loadu_ps(bias + cb + 8) : _mm256_setzero_ps();
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    for (int64_t kx = kx0; kx < kx1; kx++) {
                        const float *wp = wt + (ky * kw + kx) * C + cb;
                        const float *ip = base + ky * g->dh * rowStride + kx * dw * C + cb;
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(ip), _mm256_loadu_ps(wp), a0);
                        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(ip + 8), _mm256_loadu_ps(wp + 8), a1);
                    }
                }
                _mm256_storeu_ps(out + ox * C + cb, dw256_activate(a0, act));
                _mm256_storeu_ps(out + ox * C + cb + 8, dw256_activate(a1, act));
            }
            for (int64_t cb = C16; cb < C; cb += 8) {
                __m256i mask = lcnn_avx2_lane_mask(C - cb);
                __m256 a0 = bias ? _mm256_maskload_ps(bias + cb, mask) : _mm256_setzero_ps();
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    for (int64_t kx = kx0; kx < kx1; kx++) {
                        const float *wp = wt + (ky * kw + kx) * C + cb;
                        const float *ip = base + ky * g->dh * rowStride + kx * dw * C + cb;
                        a0 = _mm256_fmadd_ps(_mm256_maskload_ps(ip, mask), _mm256_maskload_ps(wp, mask), a0);
                    }
                }
                _mm256_maskstore_ps(out + ox * C + cb, mask, dw256_activate(a0, act));
            }
            ox += 1;
        }
    }
}

LCNN_TARGET_AVX2
static void dw_forward_avx2(const lcnn_conv_geom *g, const float *input, const float *wt, const float *bias,
                            int act, float *output, int64_t row0, int64_t row1) {
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        float *out = output + row * g->ow * g->ic;
        if (g->kw == 3 && g->sw == 1) dw256_row(g, input, wt, bias, act, out, n, oy, 3, 1);
        else if (g->kw == 3 && g->sw == 2) dw256_row(g, input, wt, bias, act, out, n, oy, 3, 2);
        else if (g->kw == 5 && g->sw == 1) dw256_row(g, input, wt, bias, act, out, n, oy, 5, 1);
        else if (g->kw == 5 && g->sw == 2) dw256_row(g, input, wt, bias, act, out, n, oy, 5, 2);
        else dw256_row(g, input, wt, bias, act, out, n, oy, 0, 0);
    }
}

// MARK: - AVX-512 forward

LCNN_TARGET_AVX512
LCNN_INLINE __m512 dw512_activate(__m512 v, int act) { return lcnn_avx512_activate(v, act); }

/// Eight consecutive output pixels × sixteen channels (lanes past `mask` untouched) with every tap inside the image
/// (dilation 1): each input column is loaded once per kernel row and serves every (pixel, tap) pair that reads it,
/// so a 3×3 stride-1 window costs 13 loads per 24 FMAs instead of 15 per 12. `KW`, `SW` are compile-time.
/// `reverse` walks the kernel rows bottom-up on alternate channel blocks, as `dw256_block8` does (L1 set conflicts).
LCNN_TARGET_AVX512
LCNN_INLINE void dw512_block8(const float *base, int64_t rowStep, int64_t rows, const float *wrow, int64_t C,
                              const float *bias, int act, float *out, __mmask16 mask, const int KW, const int SW,
                              int reverse) {
    __m512 acc[8];
    __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int j = 0; j < 8; j++) acc[j] = b;
    for (int64_t step = 0; step < rows; step++) {
        const int64_t ky = reverse ? rows - 1 - step : step;
        const float *ip = base + ky * rowStep;
        const float *wp = wrow + ky * KW * C;
        __m512 w[KW];
#pragma clang loop unroll(full)
        for (int kx = 0; kx < KW; kx++) w[kx] = _mm512_maskz_loadu_ps(mask, wp + kx * C);
#pragma clang loop unroll(full)
        for (int i = 0; i < 7 * SW + KW; i++) {
            __m512 v = _mm512_maskz_loadu_ps(mask, ip + i * C);
#pragma clang loop unroll(full)
            for (int kx = 0; kx < KW; kx++) {
                int t = i - kx;
                if (t >= 0 && t % SW == 0 && t / SW < 8) acc[t / SW] = _mm512_fmadd_ps(v, w[kx], acc[t / SW]);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int j = 0; j < 8; j++) _mm512_mask_storeu_ps(out + j * C, mask, lcnn_avx512_activate(acc[j], act));
}

/// One output row. `KW`/`SW` are compile-time kernel width and stride when nonzero (specializations): interior
/// pixels eight at a time (`dw512_block8`) when the row has at least eight, else four at a time; border pixels one at
/// a time. Each 8-pixel block prefetches the columns of the input rows the next output row reads first.
LCNN_TARGET_AVX512
LCNN_INLINE void dw512_row(const lcnn_conv_geom *g, const float *input, const float *wt, const float *bias, int act,
                           float *out, int64_t n, int64_t oy, const int64_t KW, const int64_t SW) {
    const int64_t C = g->ic, kw = KW ? KW : g->kw, sw = SW ? SW : g->sw, dw = g->dw, pl = g->pl;
    const int64_t rowStride = g->iw * C;
    const float *image = input + n * g->ih * rowStride;
    // Interior columns: every tap inside the row.
    int64_t lo = (pl + sw - 1) / sw;
    int64_t span = g->iw - 1 + pl - (kw - 1) * dw;
    int64_t hi = span < 0 ? 0 : span / sw + 1;
    if (hi > g->ow) hi = g->ow;
    if (lo > hi) lo = hi;
    int64_t ky0, ky1, next0, nextRows;
    dw_row_span(g, oy, &ky0, &ky1, &next0, &nextRows);
    int64_t ox = 0;
    while (ox < g->ow) {
        if (KW && SW && dw == 1 && ox >= lo && ox < hi && hi - lo >= 8) {
            // The last block of a row may start earlier and recompute a few pixels (same values).
            if (ox + 8 > hi) ox = hi - 8;
            const float *base = image + (oy * g->sh - g->pt + ky0 * g->dh) * rowStride + (ox * sw - pl) * C;
            const float *wrow = wt + ky0 * kw * C;
            for (int64_t cb = 0; cb < C; cb += 16) {
                __mmask16 mask = lcnn_avx512_lanes(C - cb);
                dw512_block8(base + cb, g->dh * rowStride, ky1 - ky0, wrow + cb, C, bias ? bias + cb : NULL, act,
                             out + ox * C + cb, mask, (int)KW, (int)SW, (int)((cb / 16) & 1));
            }
            for (int64_t r = 0; r < nextRows; r++) {
                const char *p = (const char *)(image + (next0 + r) * rowStride + (ox * sw - pl) * C);
                const int64_t bytes = 8 * sw * C * (int64_t)sizeof(float);
                for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
            }
            // The same columns of the next output row, for writing (a large output is out of cache).
            const char *q = (const char *)(out + (g->ow + ox) * C);
            for (int64_t off = 0; off < 8 * C * (int64_t)sizeof(float); off += 64) _mm_prefetch(q + off, _MM_HINT_ET0);
            ox += 8;
        } else if (ox >= lo && ox + 4 <= hi) {
            for (int64_t cb = 0; cb < C; cb += 16) {
                __mmask16 mask = lcnn_avx512_lanes(C - cb);
                __m512 a0 = bias ? _mm512_maskz_loadu_ps(mask, bias + cb) : _mm512_setzero_ps();
                __m512 a1 = a0, a2 = a0, a3 = a0;
                for (int64_t ky = 0; ky < g->kh; ky++) {
                    int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                    if (iy < 0 || iy >= g->ih) continue;
                    const float *rp = image + iy * rowStride + (ox * sw - pl) * C + cb;
                    const float *wp = wt + ky * kw * C + cb;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        __m512 w = _mm512_maskz_loadu_ps(mask, wp + kx * C);
                        const float *ip = rp + kx * dw * C;
                        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, ip), w, a0);
                        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, ip + sw * C), w, a1);
                        a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, ip + 2 * sw * C), w, a2);
                        a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, ip + 3 * sw * C), w, a3);
                    }
                }
                float *op = out + ox * C + cb;
                _mm512_mask_storeu_ps(op, mask, dw512_activate(a0, act));
                _mm512_mask_storeu_ps(op + C, mask, dw512_activate(a1, act));
                _mm512_mask_storeu_ps(op + 2 * C, mask, dw512_activate(a2, act));
                _mm512_mask_storeu_ps(op + 3 * C, mask, dw512_activate(a3, act));
            }
            ox += 4;
        } else if ((ky1 - ky0) * kw <= 64) {
            // Border pixel: the taps inside the image listed once, then summed over four 16-channel blocks at a time
            // (four independent FMA chains, so short rows such as 7×7 maps are not bound by FMA latency).
            const float *ips[64], *wps[64];
            const int nt = dw_border_taps(g, image, wt, oy, ox, ky0, ky1, kw, sw, ips, wps);
            for (int64_t cb = 0; cb < C; cb += 64) {
                __mmask16 m[4];
                __m512 a[4];
#pragma clang loop unroll(full)
                for (int v = 0; v < 4; v++) {
                    m[v] = lcnn_avx512_lanes(C - cb - 16 * v);
                    a[v] = bias ? _mm512_maskz_loadu_ps(m[v], bias + cb + 16 * v) : _mm512_setzero_ps();
                }
                for (int t = 0; t < nt; t++) {
#pragma clang loop unroll(full)
                    for (int v = 0; v < 4; v++)
                        a[v] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m[v], ips[t] + cb + 16 * v),
                                               _mm512_maskz_loadu_ps(m[v], wps[t] + cb + 16 * v), a[v]);
                }
#pragma clang loop unroll(full)
                for (int v = 0; v < 4; v++)
                    _mm512_mask_storeu_ps(out + ox * C + cb + 16 * v, m[v], dw512_activate(a[v], act));
            }
            ox += 1;
        } else {
            for (int64_t cb = 0; cb < C; cb += 16) {
                __mmask16 mask = lcnn_avx512_lanes(C - cb);
                __m512 a0 = bias ? _mm512_maskz_loadu_ps(mask, bias + cb) : _mm512_setzero_ps();
                for (int64_t ky = 0; ky < g->kh; ky++) {
                    int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                    if (iy < 0 || iy >= g->ih) continue;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        int64_t ix = ox * sw - pl + kx * dw;
                        if (ix < 0 || ix >= g->iw) continue;
                        __m512 w = _mm512_maskz_loadu_ps(mask, wt + (ky * kw + kx) * C + cb);
                        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, image + iy * rowStride + ix * C + cb), w, a0);
                    }
                }
                _mm512_mask_storeu_ps(out + ox * C + cb, mask, dw512_activate(a0, act));
            }
            ox += 1;
        }
    }
}

LCNN_TARGET_AVX512
static void dw_forward_avx512(const lcnn_conv_geom *g, const float *input, const float *wt, const float *bias,
                              int act, float *output, int64_t row0, int64_t row1) {
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        float *out = output + row * g->ow * g->ic;
        if (g->kw == 3 && g->sw == 1) dw512_row(g, input, wt, bias, act, out, n, oy, 3, 1);
        else if (g->kw == 3 && g->sw == 2) dw512_row(g, input, wt, bias, act, out, n, oy, 3, 2);
        else if (g->kw == 5 && g->sw == 1) dw512_row(g, input, wt, bias, act, out, n, oy, 5, 1);
        else if (g->kw == 5 && g->sw == 2) dw512_row(g, input, wt, bias, act, out, n, oy, 5, 2);
        else dw512_row(g, input, wt, bias, act, out, n, oy, 0, 0);
    }
}
#endif

// MARK: - Dispatch

void lcnn_depthwise_forward_rows(const lcnn_conv_geom *g, const float *input, const float *weightTaps,
                                 const float *bias, int act, float *output, int64_t row0, int64_t row1) {
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) { dw_forward_avx512(g, input, weightTaps, bias, act, output, row0, row1); return; }
    if (level >= 1) { dw_forward_avx2(g, input, weightTaps, bias, act, output, row0, row1); return; }
#endif
    dw_forward_portable(g, input, weightTaps, bias, act, output, row0, row1);
}

void lcnn_depthwise_backward_input_rows(const lcnn_conv_geom *g, const float *gradOutput, const float *weightTaps,
                                        float *gradInput, int64_t row0, int64_t row1) {
#if LCNN_X86
    int level = lcnn_isa_level();
    // AVX-512 machines run the AVX2 kernel (its subset); the sum per pixel is short and load-bound anyway.
    if (level >= 1) { dw_backward_input_avx2(g, gradOutput, weightTaps, gradInput, row0, row1); return; }
#endif
    dw_backward_input_portable(g, gradOutput, weightTaps, gradInput, row0, row1);
}

void lcnn_depthwise_backward_weight_rows(const lcnn_conv_geom *g, const float *input, const float *gradOutput,
                                         float *gradWeightTaps, int64_t row0, int64_t row1) {
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) { dw_backward_weight_avx512(g, input, gradOutput, gradWeightTaps, row0, row1); return; }
    if (level >= 1) { dw_backward_weight_avx2(g, input, gradOutput, gradWeightTaps, row0, row1); return; }
#endif
    dw_backward_weight_portable(g, input, gradOutput, gradWeightTaps, row0, row1);
}
