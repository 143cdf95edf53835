// Direct convolution for a small reduction depth K = kh·kw·icg with one group and a spatial kernel: network stems
// (1–4 input channels, 3×3 to 7×7) and small non-square kernels. 1×1 convolutions take the GEMM path instead.
//
// im2col + GEMM spends most of its time copying when K is this small (the micro-kernel's loop runs K times per 6×16
// tile, between two copies of the patch matrix). Here each output pixel gathers its K-value patch once (zeros
// outside the image; windows inside the image are read in place) and multiplies it by the weights packed
// `[K][ocPadded]` (tap order (ky, kx, c), output channels padded to a multiple of 8): on AVX2, tiles of 6 pixels ×
// 16 output channels, the GEMM's register tile, with each 16-channel block's weights held in L1 while a row of
// pixels streams past. Bias, residual and activation are applied before the store, as in the GEMM epilogue.
#include "internal.h"

static int64_t direct_round8(int64_t x) { return (x + 7) / 8 * 8; }

int64_t lcnn_conv2d_direct_packed_count(const lcnn_conv_geom *g) {
    return g->kh * g->kw * g->ic * direct_round8(g->oc);
}

void lcnn_conv2d_direct_pack(const lcnn_conv_geom *g, const float *weight, float *packed) {
    const int64_t ocp = direct_round8(g->oc), taps = g->kh * g->kw, K = taps * g->ic;
    memset(packed, 0, (size_t)(K * ocp) * sizeof(float));
    for (int64_t o = 0; o < g->oc; o++)
        for (int64_t c = 0; c < g->ic; c++)
            for (int64_t t = 0; t < taps; t++) packed[(t * g->ic + c) * ocp + o] = weight[(o * g->ic + c) * taps + t];
}

/// The K-value patch of output pixel (n, oy, ox), zeros where the window leaves the image.
LCNN_INLINE void direct_gather(const lcnn_conv_geom *g, const float *input, int64_t n, int64_t oy, int64_t ox, float *patch) {
    const int64_t C = g->ic;
    for (int64_t ky = 0; ky < g->kh; ky++) {
        int64_t iy = oy * g->sh - g->pt + ky * g->dh;
        for (int64_t kx = 0; kx < g->kw; kx++) {
            int64_t ix = ox * g->sw - g->pl + kx * g->dw;
            float *dst = patch + (ky * g->kw + kx) * C;
            if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw) {
                for (int64_t c = 0; c < C; c++) dst[c] = 0;
            } else {
                const float *src = input + ((n * g->ih + iy) * g->iw + ix) * C;
                for (int64_t c = 0; c < C; c++) dst[c] = src[c];
            }
        }
    }
}

LCNN_INLINE void direct_rows_portable(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                                      const float *residual, int act, float *output, int64_t row0, int64_t row1, float *patch) {
    const int64_t ocp = direct_round8(g->oc), K = g->kh * g->kw * g->ic, OC = g->oc;
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            direct_gather(g, input, n, oy, ox, patch);
            int64_t pixel = row * g->ow + ox;
            for (int64_t o = 0; o < OC; o++) {
                float s = bias ? bias[o] : 0;
                for (int64_t t = 0; t < K; t++) s += patch[t] * packed[t * ocp + o];
                if (residual) s += residual[pixel * OC + o];
                output[pixel * OC + o] = lcnn_activate(s, act);
            }
        }
    }
}

#if LCNN_X86
enum { DIRECT_TILE = 6 };

/// A tile of `DIRECT_TILE` pixels × `NB` (1 or 2) vectors of 8 output channels, the GEMM's 6×16 register tile with
/// the patch matrix read in place: twelve accumulators, and per tap 6 broadcasts and 2 weight loads for 12 FMAs.
/// Pixel `i`'s patch is `rows` runs of `run` contiguous floats `stride` apart starting at `x[i]` (the input itself
/// when the window lies inside the image, a gathered patch with `rows == 1` otherwise); `w` points at the block's
/// first output channel in the weights packed `[K][ocp]`. Pixels past the row's end repeat the last one.
LCNN_TARGET_AVX2
LCNN_INLINE void direct_tile_avx2(const int NB, int64_t rows, int64_t run, int64_t stride, int64_t ocp,
                                  const float *w, const float *const x[DIRECT_TILE], __m256 acc[DIRECT_TILE][2]) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t r = 0; r < rows; r++) {
        const float *x0 = x[0] + r * stride, *x1 = x[1] + r * stride, *x2 = x[2] + r * stride;
        const float *x3 = x[3] + r * stride, *x4 = x[4] + r * stride, *x5 = x[5] + r * stride;
        for (int64_t j = 0; j < run; j++, w += ocp) {
            __m256 b0 = _mm256_loadu_ps(w), b1 = NB > 1 ? _mm256_loadu_ps(w + 8) : b0, u;
            u = _mm256_broadcast_ss(x0 + j); c00 = _mm256_fmadd_ps(u, b0, c00); if (NB > 1) c01 = _mm256_fmadd_ps(u, b1, c01);
            u = _mm256_broadcast_ss(x1 + j); c10 = _mm256_fmadd_ps(u, b0, c10); if (NB > 1) c11 = _mm256_fmadd_ps(u, b1, c11);
            u = _mm256_broadcast_ss(x2 + j); c20 = _mm256_fmadd_ps(u, b0, c20); if (NB > 1) c21 = _mm256_fmadd_ps(u, b1, c21);
            u = _mm256_broadcast_ss(x3 + j); c30 = _mm256_fmadd_ps(u, b0, c30); if (NB > 1) c31 = _mm256_fmadd_ps(u, b1, c31);
            u = _mm256_broadcast_ss(x4 + j); c40 = _mm256_fmadd_ps(u, b0, c40); if (NB > 1) c41 = _mm256_fmadd_ps(u, b1, c41);
            u = _mm256_broadcast_ss(x5 + j); c50 = _mm256_fmadd_ps(u, b0, c50); if (NB > 1) c51 = _mm256_fmadd_ps(u, b1, c51);
        }
    }
    acc[0][0] = c00; acc[0][1] = c01; acc[1][0] = c10; acc[1][1] = c11; acc[2][0] = c20; acc[2][1] = c21;
    acc[3][0] = c30; acc[3][1] = c31; acc[4][0] = c40; acc[4][1] = c41; acc[5][0] = c50; acc[5][1] = c51;
}

/// Stores `count` pixels of a tile (`NB` vectors of 8 channels from `ob`) with bias, residual and activation `act`
/// (a constant where this is inlined, so the activation's switch folds away).
LCNN_TARGET_AVX2
LCNN_INLINE void direct_store_tile_act(const int NB, const int act, __m256 acc[DIRECT_TILE][2], int64_t count,
                                       int64_t ob, int64_t OC, const float *bias, const float *residual, float *out) {
    const int64_t w0 = OC - ob < 8 ? OC - ob : 8, w1 = NB > 1 ? (OC - ob - 8 < 8 ? OC - ob - 8 : 8) : 0;
    const __m256i m0 = lcnn_avx2_lane_mask(w0), m1 = lcnn_avx2_lane_mask(w1 > 0 ? w1 : 0);
    const __m256 zero = _mm256_setzero_ps();
    const __m256 bias0 = bias ? _mm256_maskload_ps(bias + ob, m0) : zero;
    const __m256 bias1 = bias && w1 > 0 ? _mm256_maskload_ps(bias + ob + 8, m1) : zero;
    for (int64_t i = 0; i < count; i++) {
        float *o = out + i * OC + ob;
        const float *r = residual ? residual + i * OC + ob : NULL;
        __m256 x = _mm256_add_ps(acc[i][0], bias0);
        if (r) x = _mm256_add_ps(x, w0 == 8 ? _mm256_loadu_ps(r) : _mm256_maskload_ps(r, m0));
        x = lcnn_avx2_activate(x, act);
        if (w0 == 8) _mm256_storeu_ps(o, x); else _mm256_maskstore_ps(o, m0, x);
        if (w1 > 0) {
            __m256 y = _mm256_add_ps(acc[i][1], bias1);
            if (r) y = _mm256_add_ps(y, w1 == 8 ? _mm256_loadu_ps(r + 8) : _mm256_maskload_ps(r + 8, m1));
            y = lcnn_avx2_activate(y, act);
            if (w1 == 8) _mm256_storeu_ps(o + 8, y); else _mm256_maskstore_ps(o + 8, m1, y);
        }
    }
}

LCNN_TARGET_AVX2
LCNN_INLINE void direct_store_tile_avx2(const int NB, int act, __m256 acc[DIRECT_TILE][2], int64_t count, int64_t ob,
                                        int64_t OC, const float *bias, const float *residual, float *out) {
    switch (act) {
    case LCNN_ACT_NONE: direct_store_tile_act(NB, LCNN_ACT_NONE, acc, count, ob, OC, bias, residual, out); return;
    case LCNN_ACT_RELU: direct_store_tile_act(NB, LCNN_ACT_RELU, acc, count, ob, OC, bias, residual, out); return;
    case LCNN_ACT_RELU6: direct_store_tile_act(NB, LCNN_ACT_RELU6, acc, count, ob, OC, bias, residual, out); return;
    case LCNN_ACT_HARDSWISH:
        direct_store_tile_act(NB, LCNN_ACT_HARDSWISH, acc, count, ob, OC, bias, residual, out);
        return;
    default: direct_store_tile_act(NB, act, acc, count, ob, OC, bias, residual, out); return;
    }
}

/// Whether pixel (oy, ox)'s whole window lies inside the image.
LCNN_INLINE int direct_inside(const lcnn_conv_geom *g, int64_t oy, int64_t ox) {
    int64_t iy = oy * g->sh - g->pt, ix = ox * g->sw - g->pl;
    return iy >= 0 && ix >= 0 && iy + (g->kh - 1) * g->dh < g->ih && ix + (g->kw - 1) * g->dw < g->iw;
}

/// Where the patches of the tile of `count` output pixels from (n, oy, ox) are read: with dilation 1 and every window
/// inside the image, in place — `rows` runs of `run` contiguous floats `stride` apart per pixel (a window row (kx, c)
/// is one run of kw·C input floats); otherwise gathered into `patch` (zeros outside the image, one run of K). Pixels
/// past `count` repeat the last one.
LCNN_INLINE void direct_tile_sources(const lcnn_conv_geom *g, const float *input, int64_t n, int64_t oy, int64_t ox,
                                     int64_t count, float *patch, const float *x[DIRECT_TILE], int64_t *rows,
                                     int64_t *run, int64_t *stride) {
    const int64_t K = g->kh * g->kw * g->ic, C = g->ic;
    if (g->dw == 1 && direct_inside(g, oy, ox) && direct_inside(g, oy, ox + count - 1)) {
        *rows = g->kh;
        *run = g->kw * C;
        *stride = g->dh * g->iw * C;
        const float *first = input + ((n * g->ih + oy * g->sh - g->pt) * g->iw + ox * g->sw - g->pl) * C;
        for (int i = 0; i < DIRECT_TILE; i++) x[i] = first + (i < count ? i : count - 1) * g->sw * C;
        return;
    }
    *rows = 1;
    *run = K;
    *stride = K;
    for (int i = 0; i < count; i++) {
        direct_gather(g, input, n, oy, ox + i, patch + i * K);
        x[i] = patch + i * K;
    }
    for (int64_t i = count; i < DIRECT_TILE; i++) x[i] = x[count - 1];
}

/// Rows `[row0, row1)` of output pixels (row = n·oh + oy). Per output row, blocks of 16 output channels outermost —
/// the block's weights (K × 16 floats: 9.4 KB for a 7×7 stem over 3 channels) stay in L1 while the row's pixels
/// stream past in tiles of six.
LCNN_TARGET_AVX2
static void direct_rows_avx2(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                             const float *residual, int act, float *output, int64_t row0, int64_t row1, float *patch) {
    const int64_t ocp = direct_round8(g->oc), OC = g->oc;
    __m256 acc[DIRECT_TILE][2];
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ob = 0; ob < ocp; ob += 16) {
            const int NB = ocp - ob >= 16 ? 2 : 1;
            for (int64_t ox = 0; ox < g->ow; ox += DIRECT_TILE) {
                int64_t count = g->ow - ox < DIRECT_TILE ? g->ow - ox : DIRECT_TILE;
                const float *x[DIRECT_TILE];
                int64_t rows, run, stride;
                direct_tile_sources(g, input, n, oy, ox, count, patch, x, &rows, &run, &stride);
                if (NB == 2) direct_tile_avx2(2, rows, run, stride, ocp, packed + ob, x, acc);
                else direct_tile_avx2(1, rows, run, stride, ocp, packed + ob, x, acc);
                int64_t pixel = row * g->ow + ox;
                if (NB == 2) {
                    direct_store_tile_avx2(2, act, acc, count, ob, OC, bias, residual ? residual + pixel * OC : NULL,
                                           output + pixel * OC);
                } else {
                    direct_store_tile_avx2(1, act, acc, count, ob, OC, bias, residual ? residual + pixel * OC : NULL,
                                           output + pixel * OC);
                }
            }
        }
    }
}

/// The AVX-512 tile: `DIRECT_TILE` pixels × `NB` (1 or 2) vectors of 16 output channels (lanes past `m0`/`m1` read
/// as zero; the packed rows are only `ocp` floats wide). Per tap 6 broadcasts and 2 weight loads feed 12 FMAs of
/// 16 lanes, twice the AVX2 tile's work per instruction.
LCNN_TARGET_AVX512
LCNN_INLINE void direct_tile_avx512(const int NB, int64_t rows, int64_t run, int64_t stride, int64_t ocp,
                                    const float *w, const float *const x[DIRECT_TILE], __mmask16 m0, __mmask16 m1,
                                    __m512 acc[DIRECT_TILE][2]) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t r = 0; r < rows; r++) {
        const float *x0 = x[0] + r * stride, *x1 = x[1] + r * stride, *x2 = x[2] + r * stride;
        const float *x3 = x[3] + r * stride, *x4 = x[4] + r * stride, *x5 = x[5] + r * stride;
        for (int64_t j = 0; j < run; j++, w += ocp) {
            __m512 b0 = _mm512_maskz_loadu_ps(m0, w), b1 = NB > 1 ? _mm512_maskz_loadu_ps(m1, w + 16) : b0, u;
            u = _mm512_set1_ps(x0[j]); c00 = _mm512_fmadd_ps(u, b0, c00); if (NB > 1) c01 = _mm512_fmadd_ps(u, b1, c01);
            u = _mm512_set1_ps(x1[j]); c10 = _mm512_fmadd_ps(u, b0, c10); if (NB > 1) c11 = _mm512_fmadd_ps(u, b1, c11);
            u = _mm512_set1_ps(x2[j]); c20 = _mm512_fmadd_ps(u, b0, c20); if (NB > 1) c21 = _mm512_fmadd_ps(u, b1, c21);
            u = _mm512_set1_ps(x3[j]); c30 = _mm512_fmadd_ps(u, b0, c30); if (NB > 1) c31 = _mm512_fmadd_ps(u, b1, c31);
            u = _mm512_set1_ps(x4[j]); c40 = _mm512_fmadd_ps(u, b0, c40); if (NB > 1) c41 = _mm512_fmadd_ps(u, b1, c41);
            u = _mm512_set1_ps(x5[j]); c50 = _mm512_fmadd_ps(u, b0, c50); if (NB > 1) c51 = _mm512_fmadd_ps(u, b1, c51);
        }
    }
    acc[0][0] = c00; acc[0][1] = c01; acc[1][0] = c10; acc[1][1] = c11; acc[2][0] = c20; acc[2][1] = c21;
    acc[3][0] = c30; acc[3][1] = c31; acc[4][0] = c40; acc[4][1] = c41; acc[5][0] = c50; acc[5][1] = c51;
}

/// Stores `count` pixels of an AVX-512 tile: channels `[ob, ob + 32)` clipped to `OC` by `s0`/`s1`, with bias,
/// residual and activation `act` (a constant where inlined).
LCNN_TARGET_AVX512
LCNN_INLINE void direct_store_tile512_act(const int NB, const int act, __m512 acc[DIRECT_TILE][2], int64_t count,
                                          int64_t ob, int64_t OC, int64_t ldo, __mmask16 s0, __mmask16 s1,
                                          const float *bias, const float *residual, float *out) {
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(s0, bias + ob) : _mm512_setzero_ps();
    const __m512 bias1 = bias && NB > 1 ? _mm512_maskz_loadu_ps(s1, bias + ob + 16) : _mm512_setzero_ps();
    for (int64_t i = 0; i < count; i++) {
        float *o = out + i * ldo + ob;
        const float *r = residual ? residual + i * OC + ob : NULL;
        __m512 x = _mm512_add_ps(acc[i][0], bias0);
        if (r) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(s0, r));
        _mm512_mask_storeu_ps(o, s0, lcnn_avx512_activate(x, act));
        if (NB > 1) {
            __m512 y = _mm512_add_ps(acc[i][1], bias1);
            if (r) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(s1, r + 16));
            _mm512_mask_storeu_ps(o + 16, s1, lcnn_avx512_activate(y, act));
        }
    }
}

/// `direct_store_tile512_act` with `act` made a constant for the common activations. Output pixel `i` of the tile is
/// at `out + i·ldo`, its residual at `residual + i·OC`.
LCNN_TARGET_AVX512
LCNN_TARGET_AVX512
LCNN_INLINE void direct_store_tile512(const int NB, int act, __m512 acc[DIRECT_TILE][2], int64_t count, int64_t ob,
                                      int64_t OC, int64_t ldo, __mmask16 s0, __mmask16 s1, const float *bias,
                                      const float *residual, float *out) {
    switch (act) {
    case LCNN_ACT_NONE: direct_store_tile512_act(NB, LCNN_ACT_NONE, acc, count, ob, OC, ldo, s0, s1, bias, residual, out); return;
    case LCNN_ACT_RELU: direct_store_tile512_act(NB, LCNN_ACT_RELU, acc, count, ob, OC, ldo, s0, s1, bias, residual, out); return;
    case LCNN_ACT_RELU6: direct_store_tile512_act(NB, LCNN_ACT_RELU6, acc, count, ob, OC, ldo, s0, s1, bias, residual, out); return;
    default: direct_store_tile512_act(NB, act, acc, count, ob, OC, ldo, s0, s1, bias, residual, out); return;
    }
}

/// `direct_rows_avx2` with 32-channel blocks of two zmm vectors (the packed rows stay `ocp` = 8-aligned: the last
/// block's loads and stores are masked), for dilated rows (their taps are not one run per window row).
LCNN_TARGET_AVX512
static void direct_rows_avx512_gathered(const lcnn_conv_geom *g, const float *input, const float *packed,
                                        const float *bias, const float *residual, int act, float *output, int64_t row0,
                                        int64_t row1, float *patch) {
    const int64_t ocp = direct_round8(g->oc), OC = g->oc;
    __m512 acc[DIRECT_TILE][2];
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ob = 0; ob < ocp; ob += 32) {
            const int NB = ocp - ob > 16 ? 2 : 1;
            const __mmask16 m0 = lcnn_avx512_lanes(ocp - ob), m1 = lcnn_avx512_lanes(ocp - ob - 16);
            const __mmask16 s0 = lcnn_avx512_lanes(OC - ob), s1 = lcnn_avx512_lanes(OC - ob - 16);
            for (int64_t ox = 0; ox < g->ow; ox += DIRECT_TILE) {
                int64_t count = g->ow - ox < DIRECT_TILE ? g->ow - ox : DIRECT_TILE;
                const float *x[DIRECT_TILE];
                int64_t rows, run, stride;
                direct_tile_sources(g, input, n, oy, ox, count, patch, x, &rows, &run, &stride);
                if (NB == 2) direct_tile_avx512(2, rows, run, stride, ocp, packed + ob, x, m0, m1, acc);
                else direct_tile_avx512(1, rows, run, stride, ocp, packed + ob, x, m0, m1, acc);
                int64_t pixel = row * g->ow + ox;
                const float *res = residual ? residual + pixel * OC : NULL;
                if (NB == 2) direct_store_tile512(2, act, acc, count, ob, OC, OC, s0, s1, bias, res, output + pixel * OC);
                else direct_store_tile512(1, act, acc, count, ob, OC, OC, s0, s1, bias, res, output + pixel * OC);
            }
        }
    }
}

/// Floats of a zero-bordered slab of input rows (`direct_rows_avx512`): about 256 KB, so that it stays in L2 while
/// every 32-channel block of the output sweeps it.
enum { DIRECT_SLAB_FLOATS = 65536 };

/// Output rows `[row0, row1)` (row = n·oh + oy) without dilation in width, AVX-512. Every window is read in place —
/// when the convolution pads, from a copy of the input rows the output rows read, bordered with the padding's zeros
/// (a slab of at most `DIRECT_SLAB_FLOATS`, or one output row's worth, in thread scratch) — so a tile never gathers
/// a patch, and the rows' pixels form one sequence of tiles of six that runs across row ends (a 55-pixel row costs
/// 55/6 of a tile, not 10). Per 32-channel block of output channels (its weights stay in L1) the slab's pixels stream
/// past. On one core of the Zen 5 VM: SqueezeNet 1.1's 3×3 expand (16 → 64 channels at 55×55, padded) 270 → 225 µs,
/// MobileNet's stem (3 → 32, 224×224, stride 2) 118 → 96 µs, against per-row tiles with gathered border patches.
/// The output lines of the tile two ahead are prefetched for writing, as in the GEMM: a stem's output (SqueezeNet's
/// 111²×64, 3.2 MB) is out of L2 and each store would wait for its line (in the network 214–223 → 189–193 µs, and
/// MobileNet V1's stem 125–127 → 113 µs). `ldo` is the output's pixel stride (≥ `oc`: a Concat's channel slice).
LCNN_TARGET_AVX512
static void direct_rows_avx512(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                               const float *residual, int act, float *output, int64_t ldo, int64_t row0, int64_t row1) {
    const int64_t C = g->ic, ocp = direct_round8(g->oc), OC = g->oc, ow = g->ow, oh = g->oh;
    // Slab column j holds input column j − pl; it spans every column a window of the output row touches.
    const int64_t spanW = (ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    const int padded = g->pt > 0 || g->pl > 0 || spanW > g->iw + g->pl ||
                       (oh - 1) * g->sh + (g->kh - 1) * g->dh + 1 > g->ih + g->pt;
    const int64_t slabW = padded ? spanW : g->iw, pitch = slabW * C;
    const int64_t windowRows = (g->kh - 1) * g->dh + 1;
    int64_t chunkRows = padded ? (DIRECT_SLAB_FLOATS / pitch - windowRows) / g->sh + 1 : row1 - row0;
    if (chunkRows < 1) chunkRows = 1;
    __m512 acc[DIRECT_TILE][2];
    for (int64_t row = row0; row < row1;) {
        const int64_t n = row / oh, oy0 = row % oh;
        int64_t oy1 = oy0 + (row1 - row);
        if (oy1 > oh) oy1 = oh;
        if (oy1 - oy0 > chunkRows) oy1 = oy0 + chunkRows;
        // Pixel (oy, ox)'s window starts at base + (oy·sh·slabW + ox·sw)·C.
        const float *base;
        if (padded) {
            const int64_t iyFirst = oy0 * g->sh - g->pt, slabRows = (oy1 - 1 - oy0) * g->sh + windowRows;
            float *slab = lcnn_scratch(LCNN_SCRATCH_SLAB, slabRows * pitch);
            const int64_t copyW = g->iw < slabW - g->pl ? g->iw : slabW - g->pl;
            for (int64_t r = 0; r < slabRows; r++) {
                const int64_t iy = iyFirst + r;
                float *dst = slab + r * pitch;
                if (iy < 0 || iy >= g->ih || copyW <= 0) { memset(dst, 0, (size_t)pitch * sizeof(float)); continue; }
                memset(dst, 0, (size_t)(g->pl * C) * sizeof(float));
                memcpy(dst + g->pl * C, input + ((n * g->ih + iy) * g->iw) * C, (size_t)(copyW * C) * sizeof(float));
                memset(dst + (g->pl + copyW) * C, 0, (size_t)((slabW - g->pl - copyW) * C) * sizeof(float));
            }
            base = slab - oy0 * g->sh * pitch;
        } else {
            base = input + n * g->ih * pitch;
        }
        const int64_t pixels = (oy1 - oy0) * ow, first = n * oh * ow + oy0 * ow;
        const int64_t rows = g->kh, run = g->kw * C, stride = g->dh * pitch;
        for (int64_t ob = 0; ob < ocp; ob += 32) {
            const int NB = ocp - ob > 16 ? 2 : 1;
            const __mmask16 m0 = lcnn_avx512_lanes(ocp - ob), m1 = lcnn_avx512_lanes(ocp - ob - 16);
            const __mmask16 s0 = lcnn_avx512_lanes(OC - ob), s1 = lcnn_avx512_lanes(OC - ob - 16);
            for (int64_t p = 0; p < pixels; p += DIRECT_TILE) {
                const int64_t count = pixels - p < DIRECT_TILE ? pixels - p : DIRECT_TILE;
                const float *x[DIRECT_TILE];
                for (int i = 0; i < DIRECT_TILE; i++) {  // pixels past `count` repeat the last one
                    const int64_t q = p + (i < count ? i : count - 1), oy = oy0 + q / ow, ox = q % ow;
                    x[i] = base + (oy * g->sh * slabW + ox * g->sw) * C;
                }
                if (NB == 2) direct_tile_avx512(2, rows, run, stride, ocp, packed + ob, x, m0, m1, acc);
                else direct_tile_avx512(1, rows, run, stride, ocp, packed + ob, x, m0, m1, acc);
                if (p + 3 * DIRECT_TILE <= pixels) {
                    float *ahead = output + (first + p + 2 * DIRECT_TILE) * ldo + ob;
                    for (int i = 0; i < DIRECT_TILE; i++) {
                        _mm_prefetch((const char *)(ahead + i * ldo), _MM_HINT_ET0);
                        if (NB == 2) _mm_prefetch((const char *)(ahead + i * ldo + 16), _MM_HINT_ET0);
                    }
                }
                const int64_t pixel = first + p;
                const float *res = residual ? residual + pixel * OC : NULL;
                if (NB == 2) direct_store_tile512(2, act, acc, count, ob, OC, ldo, s0, s1, bias, res, output + pixel * ldo);
                else direct_store_tile512(1, act, acc, count, ob, OC, ldo, s0, s1, bias, res, output + pixel * ldo);
            }
        }
        row += oy1 - oy0;
    }
}
#endif

void lcnn_conv2d_direct_rows(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                             const float *residual, int act, float *output, int64_t row0, int64_t row1) {
    const int64_t K = g->kh * g->kw * g->ic;
    float *patch = lcnn_scratch(LCNN_SCRATCH_COLS, 6 * K + 16);
#if LCNN_X86
    if (lcnn_isa_level() >= 2) {
        if (g->dw == 1) direct_rows_avx512(g, input, packed, bias, residual, act, output, g->oc, row0, row1);
        else direct_rows_avx512_gathered(g, input, packed, bias, residual, act, output, row0, row1, patch);
        return;
    }
    if (lcnn_isa_level() >= 1) { direct_rows_avx2(g, input, packed, bias, residual, act, output, row0, row1, patch); return; }
#endif
    direct_rows_portable(g, input, packed, bias, residual, act, output, row0, row1, patch);
}

void lcnn_conv2d_direct_rows_strided(const lcnn_conv_geom *g, const float *input, const float *packed,
                                     const float *bias, const float *residual, int act, float *output, int64_t ldo,
                                     int64_t row0, int64_t row1) {
#if LCNN_X86
    if (lcnn_isa_level() >= 2 && g->dw == 1) {
        direct_rows_avx512(g, input, packed, bias, residual, act, output, ldo, row0, row1);
        return;
    }
#endif
    // The other kernels write contiguous rows: one output row at a time through a buffer, then copied out.
    const int64_t ow = g->ow, OC = g->oc;
    float *buffer = lcnn_scratch(LCNN_SCRATCH_ROW, ow * OC);
    for (int64_t row = row0; row < row1; row++) {
        // Rows are addressed from the tensor's start: shift the buffer so that row `row` lands at its start.
        lcnn_conv2d_direct_rows(g, input, packed, bias, residual, act, buffer - row * ow * OC, row, row + 1);
        for (int64_t p = 0; p < ow; p++) memcpy(output + (row * ow + p) * ldo, buffer + p * OC, (size_t)OC * sizeof(float));
    }
}
