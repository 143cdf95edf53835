// Winograd F(4×4, 3×3) convolution on NHWC activations (dense 3×3, stride 1, dilation 1, one group).
//
// Each 4×4 block of output pixels ("tile") reads a 6×6 input patch d. With the standard F(4, 3) matrices
// (interpolation points 0, ±1, ±2, ∞) the output is Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A, so the 3×3 filter g becomes 36
// transformed taps U and the convolution becomes 36 independent GEMMs over the channels:
//   V[ξ] (tiles × ic) · U[ξ] (ic × oc) = M[ξ] (tiles × oc),   ξ = 0…35.
// U is transformed and packed once (`lcnn_winograd_pack_weights`, 36 `lcnn_pack_b` operands). A call handles a range
// of tiles in blocks sized so V and M stay near 2 MB: gather and transform the input (16 channels at a time, zeros
// outside the image), run the 36 packed GEMMs, then transform back with bias, residual and activation fused.
// The transforms are written on 16-channel arrays that the compiler vectorizes for each instruction-set target.
// 2.25× fewer multiplies than direct 3×3 (4·4·9 vs 36) at the cost of ~1e-4…1e-3 relative rounding error
// (the F(4, 3) constants up to 8 and 1/24 amplify float rounding).
#include "internal.h"

// Channels per transform block: 16 lanes, one zmm register on AVX-512 (two ymm on AVX2). With 8 the AVX-512
// build of the transforms ran 1.8× slower than the AVX2 build, and 16 made the whole convolution 2–3× faster on
// AVX-512 and up to 1.3× on AVX2 (56×56×64: 1.76 → 0.58 ms; 14×14×256: 0.89 → 0.46 ms; Zen 5, one core).
enum { WCB = 16 };

static int64_t wino_round_block(int64_t x) { return (x + WCB - 1) / WCB * WCB; }

int64_t lcnn_winograd_packed_count(int64_t ic, int64_t oc) { return 36 * lcnn_packed_b_count(ic, oc); }

/// U = G·g·Gᵀ for the 16 output channels `o0 … o0+15` of input channel `c`, stored straight into the packed
/// layout of the 36 matrices (`lcnn_pack_b`: element (k, n) of a `[ic, oc]` matrix at
/// `(k/KC)·KC·stride + (n/16)·kc·16 + (k mod KC)·16 + n mod 16`, where kc is the depth of k's KC block).
/// The 16 lanes are one panel row, so every store is 16 contiguous floats; lanes past `oc` are zero.
LCNN_INLINE void wino_pack_panel_body(int64_t ic, int64_t oc, const float *weight, float *packed, int64_t c,
                                      int64_t o0) {
    enum { L = 16 };
    const float g6 = 1.0f / 6, g12 = 1.0f / 12, g24 = 1.0f / 24;
    float g[9][L], t[6][3][L];
    for (int l = 0; l < L; l++) {
        const float *src = o0 + l < oc ? weight + ((o0 + l) * ic + c) * 9 : NULL;
        for (int k = 0; k < 9; k++) g[k][l] = src ? src[k] : 0;
    }
    // t = G·g (rows of G: [1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6],
    // [1/24, -1/12, 1/6], [0, 0, 1]).
    for (int b = 0; b < 3; b++) {
        for (int l = 0; l < L; l++) {
            float x0 = g[b][l], x1 = g[3 + b][l], x2 = g[6 + b][l];
            t[0][b][l] = 0.25f * x0;
            t[1][b][l] = -g6 * (x0 + x1 + x2);
            t[2][b][l] = -g6 * (x0 - x1 + x2);
            t[3][b][l] = g24 * x0 + g12 * x1 + g6 * x2;
            t[4][b][l] = g24 * x0 - g12 * x1 + g6 * x2;
            t[5][b][l] = x2;
        }
    }
    int64_t stride = (oc + L - 1) / L * L, plane = stride * ic;
    int64_t pc = c / LCNN_GEMM_KC * LCNN_GEMM_KC;
    int64_t kc = ic - pc < LCNN_GEMM_KC ? ic - pc : LCNN_GEMM_KC;
    float *dst = packed + pc * stride + (o0 / L) * kc * L + (c - pc) * L;
    // U = t·Gᵀ, row by row.
    for (int r = 0; r < 6; r++) {
        float *u0 = dst + (r * 6) * plane;
        for (int l = 0; l < L; l++) {
            float x0 = t[r][0][l], x1 = t[r][1][l], x2 = t[r][2][l];
            u0[l] = 0.25f * x0;
            u0[plane + l] = -g6 * (x0 + x1 + x2);
            u0[2 * plane + l] = -g6 * (x0 - x1 + x2);
            u0[3 * plane + l] = g24 * x0 + g12 * x1 + g6 * x2;
            u0[4 * plane + l] = g24 * x0 - g12 * x1 + g6 * x2;
            u0[5 * plane + l] = x2;
        }
    }
}

static void wino_pack_portable(int64_t ic, int64_t oc, const float *weight, float *packed) {
    for (int64_t o0 = 0; o0 < oc; o0 += 16)
        for (int64_t c = 0; c < ic; c++) wino_pack_panel_body(ic, oc, weight, packed, c, o0);
}

#if LCNN_X86
LCNN_TARGET_AVX2
static void wino_pack_avx2(int64_t ic, int64_t oc, const float *weight, float *packed) {
    for (int64_t o0 = 0; o0 < oc; o0 += 16)
        for (int64_t c = 0; c < ic; c++) wino_pack_panel_body(ic, oc, weight, packed, c, o0);
}

LCNN_TARGET_AVX512
static void wino_pack_avx512(int64_t ic, int64_t oc, const float *weight, float *packed) {
    for (int64_t o0 = 0; o0 < oc; o0 += 16)
        for (int64_t c = 0; c < ic; c++) wino_pack_panel_body(ic, oc, weight, packed, c, o0);
}
#endif

void lcnn_winograd_pack_weights(int64_t ic, int64_t oc, const float *weight, float *packed) {
    if (ic <= 0 || oc <= 0) return;
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) { wino_pack_avx512(ic, oc, weight, packed); return; }
    if (level >= 1) { wino_pack_avx2(ic, oc, weight, packed); return; }
#endif
    wino_pack_portable(ic, oc, weight, packed);
}

/// Bᵀ·x over six 16-lane rows `x[i·step]` into `y[i·ystep]`.
LCNN_INLINE void wino_bt(const float *x, int64_t step, float *y, int64_t ystep) {
    for (int l = 0; l < WCB; l++) {
        float x0 = x[l], x1 = x[step + l], x2 = x[2 * step + l], x3 = x[3 * step + l], x4 = x[4 * step + l],
              x5 = x[5 * step + l];
        y[l] = 4 * x0 - 5 * x2 + x4;
        y[ystep + l] = -4 * x1 - 4 * x2 + x3 + x4;
        y[2 * ystep + l] = 4 * x1 - 4 * x2 - x3 + x4;
        y[3 * ystep + l] = -2 * x1 - x2 + 2 * x3 + x4;
        y[4 * ystep + l] = 2 * x1 - x2 - 2 * x3 + x4;
        y[5 * ystep + l] = 4 * x1 - 5 * x3 + x5;
    }
}

/// Aᵀ·x over six 16-lane rows `x[i·step]` into four rows `y[i·ystep]`.
LCNN_INLINE void wino_at(const float *x, int64_t step, float *y, int64_t ystep) {
    for (int l = 0; l < WCB; l++) {
        float x0 = x[l], x1 = x[step + l], x2 = x[2 * step + l], x3 = x[3 * step + l], x4 = x[4 * step + l],
              x5 = x[5 * step + l];
        float p12 = x1 + x2, m12 = x1 - x2, p34 = x3 + x4, m34 = x3 - x4;
        y[l] = x0 + p12 + p34;
        y[ystep + l] = m12 + 2 * m34;
        y[2 * ystep + l] = p12 + 4 * p34;
        y[3 * ystep + l] = m12 + 8 * m34 + x5;
    }
}

LCNN_INLINE void wino_activate_block(float *v, int act) {
    switch (act) {
    case LCNN_ACT_NONE: return;
    case LCNN_ACT_RELU: for (int l = 0; l < WCB; l++) v[l] = v[l] > 0 ? v[l] : 0; return;
    case LCNN_ACT_RELU6: for (int l = 0; l < WCB; l++) v[l] = v[l] < 0 ? 0 : (v[l] > 6 ? 6 : v[l]); return;
    case LCNN_ACT_HARDSWISH:
        for (int l = 0; l < WCB; l++) {
            float t = v[l] + 3;
            t = t < 0 ? 0 : (t > 6 ? 6 : t);
            v[l] = v[l] * t * (1.0f / 6);
        }
        return;
    default: for (int l = 0; l < WCB; l++) v[l] = lcnn_activate(v[l], act); return;
    }
}

LCNN_INLINE void wino_forward_body(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                                   const float *residual, int act, float *output, int64_t tile0, int64_t ntiles,
                                   int64_t oc0, int64_t noc) {
    const int64_t IC = g->ic, OC = noc, ldv = wino_round_block(IC), ldm = wino_round_block(OC), ldo = g->oc;
    if (bias) bias += oc0;
    if (residual) residual += oc0;
    output += oc0;
    const int64_t tilesX = (g->ow + 3) / 4, tilesY = (g->oh + 3) / 4;
    const int64_t ustride = lcnn_packed_b_count(IC, g->oc), panelStride = (g->oc + 15) / 16 * 16;
    int64_t T = (2 << 20) / (36 * 4 * (ldv + ldm));
    if (T < 6) T = 6;
    if (T > 96) T = 96;
    if (T > ntiles) T = ntiles;
    if (T <= 0) return;
    float *V = lcnn_scratch(LCNN_SCRATCH_WINO_V, 36 * T * ldv);
    float *M = lcnn_scratch(LCNN_SCRATCH_WINO_M, 36 * T * ldm);
    const int64_t end = tile0 + ntiles;
    for (int64_t b0 = tile0; b0 < end; b0 += T) {
        const int64_t nt = end - b0 < T ? end - b0 : T;
        const int64_t vplane = nt * ldv, mplane = nt * ldm;
        // Input transform: V[ξ][t][c] = (Bᵀ·d·B)[ξ].
        for (int64_t t = 0; t < nt; t++) {
            int64_t tile = b0 + t, tx = tile % tilesX, rest = tile / tilesX, ty = rest % tilesY, n = rest / tilesY;
            int64_t iy0 = ty * 4 - g->pt, ix0 = tx * 4 - g->pl;
            for (int64_t c0 = 0; c0 < IC; c0 += WCB) {
                int64_t w = IC - c0 < WCB ? IC - c0 : WCB;
                float d[36][WCB], tmp[36][WCB];
                for (int i = 0; i < 6; i++) {
                    int64_t iy = iy0 + i;
                    for (int j = 0; j < 6; j++) {
                        int64_t ix = ix0 + j;
                        if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw) {
                            for (int l = 0; l < WCB; l++) d[i * 6 + j][l] = 0;
                            continue;
                        }
                        const float *src = input + ((n * g->ih + iy) * g->iw + ix) * IC + c0;
                        if (w == WCB) {
                            for (int l = 0; l < WCB; l++) d[i * 6 + j][l] = src[l];
                        } else {
                            for (int l = 0; l < WCB; l++) d[i * 6 + j][l] = l < w ? src[l] : 0;
                        }
                    }
                }
                // Columns: tmp[r][j] = Σᵢ Bᵀ[r][i]·d[i][j]; then rows: V[r][s] = Σⱼ tmp[r][j]·B[j][s].
                for (int j = 0; j < 6; j++) wino_bt(d[j], 6 * WCB, tmp[j], 6 * WCB);
                float out[36][WCB];
                for (int r = 0; r < 6; r++) wino_bt(tmp[r * 6], WCB, out[r * 6], WCB);
                float *dst = V + t * ldv + c0;
                for (int xi = 0; xi < 36; xi++)
                    for (int l = 0; l < WCB; l++) dst[xi * vplane + l] = out[xi][l];
            }
        }
        // 36 GEMMs against the packed transformed weights.
        for (int xi = 0; xi < 36; xi++)
            lcnn_gemm_core_sub(0, nt, OC, IC, 1, V + xi * vplane, ldv, 0, NULL, 0, packed + xi * ustride, panelStride,
                               oc0 / 16, 0, M + xi * mplane, ldm, NULL, NULL, 0, LCNN_ACT_NONE);
        // Output transform with bias, residual and activation.
        for (int64_t t = 0; t < nt; t++) {
            int64_t tile = b0 + t, tx = tile % tilesX, rest = tile / tilesX, ty = rest % tilesY, n = rest / tilesY;
            int64_t oy0 = ty * 4, ox0 = tx * 4;
            int64_t rows = g->oh - oy0 < 4 ? g->oh - oy0 : 4, cols = g->ow - ox0 < 4 ? g->ow - ox0 : 4;
            for (int64_t c0 = 0; c0 < OC; c0 += WCB) {
                int64_t w = OC - c0 < WCB ? OC - c0 : WCB;
                float m[36][WCB], tmp[24][WCB], y[16][WCB], b[WCB];
                const float *src = M + t * ldm + c0;
                for (int xi = 0; xi < 36; xi++)
                    for (int l = 0; l < WCB; l++) m[xi][l] = src[xi * mplane + l];
                for (int j = 0; j < 6; j++) wino_at(m[j], 6 * WCB, tmp[j], 6 * WCB);   // tmp[r][j], r < 4
                for (int r = 0; r < 4; r++) wino_at(tmp[r * 6], WCB, y[r * 4], WCB);    // y[r][s]
                for (int l = 0; l < WCB; l++) b[l] = (bias && l < w) ? bias[c0 + l] : 0;
                for (int r = 0; r < rows; r++) {
                    for (int s = 0; s < cols; s++) {
                        int64_t offset = ((n * g->oh + oy0 + r) * g->ow + ox0 + s) * ldo + c0;
                        float v[WCB];
                        for (int l = 0; l < WCB; l++) v[l] = y[r * 4 + s][l] + b[l];
                        if (residual) {
                            if (w == WCB) for (int l = 0; l < WCB; l++) v[l] += residual[offset + l];
                            else for (int l = 0; l < w; l++) v[l] += residual[offset + l];
                        }
                        wino_activate_block(v, act);
                        float *o = output + offset;
                        if (w == WCB) for (int l = 0; l < WCB; l++) o[l] = v[l];
                        else for (int l = 0; l < w; l++) o[l] = v[l];
                    }
                }
            }
        }
    }
}

static void wino_forward_portable(const lcnn_conv_geom *g, const float *input, const float *packed,
                                  const float *bias, const float *residual, int act, float *output, int64_t tile0,
                                  int64_t ntiles, int64_t oc0, int64_t noc) {
    wino_forward_body(g, input, packed, bias, residual, act, output, tile0, ntiles, oc0, noc);
}

#if LCNN_X86
LCNN_TARGET_AVX2
static void wino_forward_avx2(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                              const float *residual, int act, float *output, int64_t tile0, int64_t ntiles,
                              int64_t oc0, int64_t noc) {
    wino_forward_body(g, input, packed, bias, residual, act, output, tile0, ntiles, oc0, noc);
}

LCNN_TARGET_AVX512
static void wino_forward_avx512(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                                const float *residual, int act, float *output, int64_t tile0, int64_t ntiles,
                              int64_t oc0, int64_t noc) {
    wino_forward_body(g, input, packed, bias, residual, act, output, tile0, ntiles, oc0, noc);
}
#endif

void lcnn_winograd_forward_tiles(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                                 const float *residual, int act, float *output, int64_t tile0, int64_t ntiles) {
    lcnn_winograd_forward_tiles_channels(g, input, packed, bias, residual, act, output, tile0, ntiles, 0, g->oc);
}

void lcnn_winograd_forward_tiles_channels(const lcnn_conv_geom *g, const float *input, const float *packed,
                                          const float *bias, const float *residual, int act, float *output,
                                          int64_t tile0, int64_t ntiles, int64_t oc0, int64_t noc) {
    if (oc0 % 16 != 0 || oc0 < 0 || noc <= 0 || oc0 + noc > g->oc) abort();
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) {
        wino_forward_avx512(g, input, packed, bias, residual, act, output, tile0, ntiles, oc0, noc);
        return;
    }
    if (level >= 1) {
        wino_forward_avx2(g, input, packed, bias, residual, act, output, tile0, ntiles, oc0, noc);
        return;
    }
#endif
    wino_forward_portable(g, input, packed, bias, residual, act, output, tile0, ntiles, oc0, noc);
}
