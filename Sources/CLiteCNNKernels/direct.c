// Direct convolution for a small reduction depth K = kh·kw·icg with one group and a spatial kernel: network stems
// (1–4 input channels, 3×3 to 7×7) and small non-square kernels. 1×1 convolutions take the GEMM path instead.
//
// im2col + GEMM spends most of its time copying when K is this small (the micro-kernel's loop runs K times per 6×16
// tile, between two copies of the patch matrix). Here each output pixel gathers its K-value patch once (zeros
// outside the image) and multiplies it by the weights packed `[K][ocPadded]` (tap order (ky, kx, c), output
// channels padded to a multiple of 8), which stay in L1: per pair of pixels and block of 32 output channels,
// K × 8 FMAs from 4 weight loads and 2 broadcasts per tap. Bias, residual and activation are applied before the
// store, as in the GEMM epilogue.
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
/// `NB` (1…4) vectors of 8 output channels from `ob`, for one or two pixels (`p1 == NULL`: one). A pixel's patch is
/// `rows` runs of `run` contiguous floats, `stride` apart (the input itself for windows inside the image, a gathered
/// patch with `stride == run` at the borders); weights follow the same (ky, kx, c) order.
LCNN_TARGET_AVX2
LCNN_INLINE void direct_block_avx2(const int NB, int64_t rows, int64_t run, int64_t stride0, int64_t stride1,
                                   int64_t ocp, const float *packed, int64_t ob, const float *p0, const float *p1,
                                   __m256 acc0[4], __m256 acc1[4]) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const float *w = packed + ob;
    for (int64_t r = 0; r < rows; r++) {
        const float *x0 = p0 + r * stride0, *x1 = p1 ? p1 + r * stride1 : NULL;
        if (x1) {
            for (int64_t j = 0; j < run; j++, w += ocp) {
                __m256 u = _mm256_broadcast_ss(x0 + j), v = _mm256_broadcast_ss(x1 + j), wv;
                wv = _mm256_loadu_ps(w); a0 = _mm256_fmadd_ps(u, wv, a0); b0 = _mm256_fmadd_ps(v, wv, b0);
                if (NB > 1) { wv = _mm256_loadu_ps(w + 8); a1 = _mm256_fmadd_ps(u, wv, a1); b1 = _mm256_fmadd_ps(v, wv, b1); }
                if (NB > 2) { wv = _mm256_loadu_ps(w + 16); a2 = _mm256_fmadd_ps(u, wv, a2); b2 = _mm256_fmadd_ps(v, wv, b2); }
                if (NB > 3) { wv = _mm256_loadu_ps(w + 24); a3 = _mm256_fmadd_ps(u, wv, a3); b3 = _mm256_fmadd_ps(v, wv, b3); }
            }
        } else {
            for (int64_t j = 0; j < run; j++, w += ocp) {
                __m256 u = _mm256_broadcast_ss(x0 + j);
                a0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w), a0);
                if (NB > 1) a1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w + 8), a1);
                if (NB > 2) a2 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w + 16), a2);
                if (NB > 3) a3 = _mm256_fmadd_ps(u, _mm256_loadu_ps(w + 24), a3);
            }
        }
    }
    acc0[0] = a0; acc0[1] = a1; acc0[2] = a2; acc0[3] = a3;
    acc1[0] = b0; acc1[1] = b1; acc1[2] = b2; acc1[3] = b3;
}

LCNN_TARGET_AVX2
LCNN_INLINE void direct_store_avx2(int NB, const __m256 acc[4], int64_t ob, int64_t OC, const float *bias,
                                   const float *residual, int act, float *out) {
    for (int v = 0; v < NB; v++) {
        int64_t o = ob + 8 * v, w = OC - o < 8 ? OC - o : 8;
        __m256i mask = lcnn_avx2_lane_mask(w);
        __m256 x = acc[v];
        if (bias) x = _mm256_add_ps(x, w == 8 ? _mm256_loadu_ps(bias + o) : _mm256_maskload_ps(bias + o, mask));
        if (residual) x = _mm256_add_ps(x, w == 8 ? _mm256_loadu_ps(residual + o) : _mm256_maskload_ps(residual + o, mask));
        x = lcnn_avx2_activate(x, act);
        if (w == 8) _mm256_storeu_ps(out + o, x);
        else _mm256_maskstore_ps(out + o, mask, x);
    }
}

/// Whether pixel (oy, ox)'s whole window lies inside the image.
LCNN_INLINE int direct_inside(const lcnn_conv_geom *g, int64_t oy, int64_t ox) {
    int64_t iy = oy * g->sh - g->pt, ix = ox * g->sw - g->pl;
    return iy >= 0 && ix >= 0 && iy + (g->kh - 1) * g->dh < g->ih && ix + (g->kw - 1) * g->dw < g->iw;
}

LCNN_TARGET_AVX2
static void direct_rows_avx2(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                             const float *residual, int act, float *output, int64_t row0, int64_t row1, float *patch) {
    const int64_t ocp = direct_round8(g->oc), K = g->kh * g->kw * g->ic, OC = g->oc, C = g->ic;
    // Inside the image with dilation 1, a window row (kx, c) is one contiguous run of kw·C input floats.
    const int contiguousRows = g->dw == 1;
    float *patch1 = patch + K;
    __m256 acc0[4], acc1[4];
    for (int64_t row = row0; row < row1; row++) {
        int64_t n = row / g->oh, oy = row % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox += 2) {
            int two = ox + 1 < g->ow;
            int64_t pixel = row * g->ow + ox;
            const float *p0, *p1 = NULL;
            int64_t rows = 1, run = K, s0 = K, s1 = K;
            if (contiguousRows && direct_inside(g, oy, ox) && (!two || direct_inside(g, oy, ox + 1))) {
                rows = g->kh;
                run = g->kw * C;
                s0 = s1 = g->dh * g->iw * C;
                p0 = input + ((n * g->ih + oy * g->sh - g->pt) * g->iw + ox * g->sw - g->pl) * C;
                if (two) p1 = p0 + g->sw * C;
            } else {
                direct_gather(g, input, n, oy, ox, patch);
                p0 = patch;
                if (two) { direct_gather(g, input, n, oy, ox + 1, patch1); p1 = patch1; }
            }
            float *out0 = output + pixel * OC, *out1 = out0 + OC;
            const float *r0 = residual ? residual + pixel * OC : NULL, *r1 = residual ? r0 + OC : NULL;
            for (int64_t ob = 0; ob < ocp; ob += 32) {
                int64_t left = (ocp - ob) / 8;
                int NB = left >= 4 ? 4 : (int)left;
                switch (NB) {
                case 4: direct_block_avx2(4, rows, run, s0, s1, ocp, packed, ob, p0, p1, acc0, acc1); break;
                case 3: direct_block_avx2(3, rows, run, s0, s1, ocp, packed, ob, p0, p1, acc0, acc1); break;
                case 2: direct_block_avx2(2, rows, run, s0, s1, ocp, packed, ob, p0, p1, acc0, acc1); break;
                default: direct_block_avx2(1, rows, run, s0, s1, ocp, packed, ob, p0, p1, acc0, acc1); break;
                }
                direct_store_avx2(NB, acc0, ob, OC, bias, r0, act, out0);
                if (two) direct_store_avx2(NB, acc1, ob, OC, bias, r1, act, out1);
            }
        }
    }
}
#endif

void lcnn_conv2d_direct_rows(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                             const float *residual, int act, float *output, int64_t row0, int64_t row1) {
    const int64_t K = g->kh * g->kw * g->ic;
    float *patch = lcnn_scratch(LCNN_SCRATCH_COLS, 2 * K + 16);
#if LCNN_X86
    if (lcnn_isa_level() >= 1) { direct_rows_avx2(g, input, packed, bias, residual, act, output, row0, row1, patch); return; }
#endif
    direct_rows_portable(g, input, packed, bias, residual, act, output, row0, row1, patch);
}
