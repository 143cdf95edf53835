// Packed, cache-blocked single-precision GEMM (row-major).
//
// Goto/BLIS structure: B is packed per (KC × NC) block into 16-column panels, A per (MC × KC) block into 6-row
// panels, and a register-tiled micro-kernel multiplies one A panel by one or two B panels:
//   AVX-512: 6 × 32 (12 zmm accumulators, two 16-wide B panels), 6 × 16 for a narrow right edge;
//   AVX2:    6 × 16 (12 ymm accumulators);
//   portable: 6 × 16 in plain C.
// The packed B layout does not depend on the instruction set, so weights packed once (`lcnn_pack_b`) serve every
// level. Edges are zero-padded in the packed panels; stores are masked (AVX-512) or go through a scratch tile.
//
// Direct path (the inference case C = act(A·B + bias + residual) with B pre-packed): A is read in place instead of
// being packed, and each tile accumulates over the whole depth K in registers (walking B's KC blocks) before one
// epilogue, so C is written once. For the short reductions of lightweight networks (1×1 convolutions with
// K = 16…160) packing A and re-reading C per KC block cost as much as the multiply-adds; measured on the development
// VM (Zen 3, one core) the AVX2 direct path (6 × 16 tiles) runs 1×1 products at 70–90 GFLOP/s where the packed path
// ran 20–70. On Zen 5 the AVX-512 direct path is 10–30 % faster than the packed one for K ≤ 192 (12544×64×32:
// 271 → 210 µs) and level with it on deep products; its tile height follows the rows to cover (6 × 32, 7 or 8 × 48,
// 4 × 64), so that a 7×7 map or a batch of 8 is not padded to multiples of 6.
#include "internal.h"

enum { MR = 6, PW = 16, KC = LCNN_GEMM_KC, MC = 144, NC = 1024 };

// MARK: - Scratch

static _Thread_local float *scratch_pointer[LCNN_SCRATCH_COUNT];
static _Thread_local int64_t scratch_capacity[LCNN_SCRATCH_COUNT];

float *lcnn_band_scratch(int64_t count) { return lcnn_scratch(LCNN_SCRATCH_BAND, count); }

float *lcnn_scratch(int slot, int64_t count) {
    if (scratch_capacity[slot] < count) {
        free(scratch_pointer[slot]);
        int64_t capacity = count + count / 4 + 64;
        void *p = NULL;
        if (posix_memalign(&p, 64, (size_t)capacity * sizeof(float)) != 0) abort();
        scratch_pointer[slot] = (float *)p;
        scratch_capacity[slot] = capacity;
    }
    return scratch_pointer[slot];
}

// MARK: - Packing

/// Packs op(B)[0..<kc, 0..<nc] (b points at op(B)[0][0]) into ceil(nc/16) panels of kc × 16, zero-padded.
static void pack_b_block(int transB, int64_t kc, int64_t nc, const float *b, int64_t ldb, float *out) {
    for (int64_t q = 0; q < nc; q += PW) {
        int64_t w = nc - q < PW ? nc - q : PW;
        float *panel = out + (q / PW) * kc * PW;
        if (!transB) {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = b + p * ldb + q;
                float *dst = panel + p * PW;
                if (w == PW) {
                    memcpy(dst, src, PW * sizeof(float));
                } else {
                    for (int64_t j = 0; j < w; j++) dst[j] = src[j];
                    for (int64_t j = w; j < PW; j++) dst[j] = 0;
                }
            }
        } else {
            // panel[p][j] = B[q + j][p]: a w × kc transpose (8×8 register tiles).
            if (w < PW) memset(panel, 0, (size_t)(kc * PW) * sizeof(float));
            lcnn_transpose_2d(b + q * ldb, w, kc, ldb, panel, PW);
        }
    }
}

/// Packs op(A)[0..<mc, 0..<kc] (a points at op(A)[0][0]) into ceil(mc/6) panels of kc × 6, zero-padded.
static void pack_a_block(int transA, int64_t mc, int64_t kc, const float *a, int64_t lda, float *out) {
    for (int64_t r = 0; r < mc; r += MR) {
        int64_t h = mc - r < MR ? mc - r : MR;
        float *panel = out + (r / MR) * kc * MR;
        if (!transA) {
            if (h == MR) {
                const float *a0 = a + r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda, *a4 = a3 + lda,
                            *a5 = a4 + lda;
                for (int64_t p = 0; p < kc; p++) {
                    float *d = panel + p * MR;
                    d[0] = a0[p]; d[1] = a1[p]; d[2] = a2[p]; d[3] = a3[p]; d[4] = a4[p]; d[5] = a5[p];
                }
            } else {
                for (int64_t p = 0; p < kc; p++) {
                    float *d = panel + p * MR;
                    for (int64_t i = 0; i < h; i++) d[i] = a[(r + i) * lda + p];
                    for (int64_t i = h; i < MR; i++) d[i] = 0;
                }
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = a + p * lda + r;
                float *d = panel + p * MR;
                for (int64_t i = 0; i < h; i++) d[i] = src[i];
                for (int64_t i = h; i < MR; i++) d[i] = 0;
            }
        }
    }
}

// MARK: - Epilogue

/// What the micro-kernel does with its accumulators: `first` applies beta and bias, `last` the activation.
typedef struct {
    float alpha, beta;
    const float *bias;      // already offset to the tile's first column, or NULL
    const float *residual;  // already offset to the tile's corner, or NULL; added by `last`
    int64_t ldr;
    int first, last, act;
} epilogue;

#define activate lcnn_activate

/// Scalar epilogue over an mr × nr corner of a tile stored with row stride `ts`.
static void store_tile_scalar(const float *tile, int64_t ts, float *c, int64_t ldc, int64_t mr, int64_t nr,
                              const epilogue *e) {
    for (int64_t i = 0; i < mr; i++) {
        for (int64_t j = 0; j < nr; j++) {
            float v = e->alpha * tile[i * ts + j];
            if (e->first) {
                if (e->beta != 0) v += e->beta * c[i * ldc + j];
                if (e->bias) v += e->bias[j];
            } else {
                v += c[i * ldc + j];
            }
            if (e->last) {
                if (e->residual) v += e->residual[i * e->ldr + j];
                v = activate(v, e->act);
            }
            c[i * ldc + j] = v;
        }
    }
}

// MARK: - Portable micro-kernel

static void kernel_portable_6x16(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                                 int64_t mr, int64_t nr, const epilogue *e) {
    float acc[MR][PW];
    memset(acc, 0, sizeof acc);
    for (int64_t p = 0; p < kc; p++) {
        const float *bp = pb + p * PW;
        for (int i = 0; i < MR; i++) {
            float av = pa[p * MR + i];
            for (int j = 0; j < PW; j++) acc[i][j] += av * bp[j];
        }
    }
    store_tile_scalar(&acc[0][0], PW, c, ldc, mr, nr, e);
}

#if LCNN_X86
// MARK: - AVX2 micro-kernel

LCNN_TARGET_AVX2
static void kernel_avx2_6x16(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                             int64_t mr, int64_t nr, const epilogue *e) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(pb + p * PW), b1 = _mm256_loadu_ps(pb + p * PW + 8);
        const float *ap = pa + p * MR;
        __m256 a;
        a = _mm256_broadcast_ss(ap + 0); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(ap + 1); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(ap + 2); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(ap + 3); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(ap + 4); c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(ap + 5); c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    __m256 alpha = _mm256_set1_ps(e->alpha), beta = _mm256_set1_ps(e->beta);
    for (int h = 0; h < 2; h++) {
        int64_t w = nr - 8 * h;
        if (w <= 0) break;
        if (w > 8) w = 8;
        __m256i mask = lcnn_avx2_lane_mask(w);
        const float *bias = e->bias ? e->bias + h * 8 : NULL;
        for (int i = 0; i < MR; i++) {
            if (i >= mr) break;
            float *cp = c + i * ldc + h * 8;
            __m256 v = _mm256_mul_ps(alpha, acc[i][h]);
            if (e->first) {
                if (e->beta != 0) v = _mm256_fmadd_ps(beta, w == 8 ? _mm256_loadu_ps(cp) : _mm256_maskload_ps(cp, mask), v);
                if (bias) v = _mm256_add_ps(v, w == 8 ? _mm256_loadu_ps(bias) : _mm256_maskload_ps(bias, mask));
            } else {
                v = _mm256_add_ps(v, w == 8 ? _mm256_loadu_ps(cp) : _mm256_maskload_ps(cp, mask));
            }
            if (e->last) {
                if (e->residual) {
                    const float *rp = e->residual + i * e->ldr + h * 8;
                    v = _mm256_add_ps(v, w == 8 ? _mm256_loadu_ps(rp) : _mm256_maskload_ps(rp, mask));
                }
                v = lcnn_avx2_activate(v, e->act);
            }
            if (w == 8) _mm256_storeu_ps(cp, v);
            else _mm256_maskstore_ps(cp, mask, v);
        }
    }
}

// MARK: - AVX-512 micro-kernels

LCNN_TARGET_AVX512
LCNN_INLINE void store_row_avx512(__m512 acc, float *cp, const float *bias, const float *rp, __mmask16 mask,
                                  const epilogue *e) {
    __m512 v = _mm512_mul_ps(_mm512_set1_ps(e->alpha), acc);
    if (e->first) {
        if (e->beta != 0) v = _mm512_fmadd_ps(_mm512_set1_ps(e->beta), _mm512_maskz_loadu_ps(mask, cp), v);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
    } else {
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, cp));
    }
    if (e->last) {
        if (rp) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, rp));
        v = lcnn_avx512_activate(v, e->act);
    }
    _mm512_mask_storeu_ps(cp, mask, v);
}

LCNN_TARGET_AVX512
static void kernel_avx512_6x32(int64_t kc, const float *pa, const float *pb0, const float *pb1, float *c,
                               int64_t ldc, int64_t mr, int64_t nr, const epilogue *e) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    int64_t p = 0;
    for (; p + 1 < kc; p += 2) {
        const float *ap = pa + p * MR;
        __m512 b0 = _mm512_loadu_ps(pb0 + p * PW), b1 = _mm512_loadu_ps(pb1 + p * PW);
        __m512 a;
        a = _mm512_set1_ps(ap[0]); c00 = _mm512_fmadd_ps(a, b0, c00); c01 = _mm512_fmadd_ps(a, b1, c01);
        a = _mm512_set1_ps(ap[1]); c10 = _mm512_fmadd_ps(a, b0, c10); c11 = _mm512_fmadd_ps(a, b1, c11);
        a = _mm512_set1_ps(ap[2]); c20 = _mm512_fmadd_ps(a, b0, c20); c21 = _mm512_fmadd_ps(a, b1, c21);
        a = _mm512_set1_ps(ap[3]); c30 = _mm512_fmadd_ps(a, b0, c30); c31 = _mm512_fmadd_ps(a, b1, c31);
        a = _mm512_set1_ps(ap[4]); c40 = _mm512_fmadd_ps(a, b0, c40); c41 = _mm512_fmadd_ps(a, b1, c41);
        a = _mm512_set1_ps(ap[5]); c50 = _mm512_fmadd_ps(a, b0, c50); c51 = _mm512_fmadd_ps(a, b1, c51);
        b0 = _mm512_loadu_ps(pb0 + p * PW + PW); b1 = _mm512_loadu_ps(pb1 + p * PW + PW);
        a = _mm512_set1_ps(ap[6]); c00 = _mm512_fmadd_ps(a, b0, c00); c01 = _mm512_fmadd_ps(a, b1, c01);
        a = _mm512_set1_ps(ap[7]); c10 = _mm512_fmadd_ps(a, b0, c10); c11 = _mm512_fmadd_ps(a, b1, c11);
        a = _mm512_set1_ps(ap[8]); c20 = _mm512_fmadd_ps(a, b0, c20); c21 = _mm512_fmadd_ps(a, b1, c21);
        a = _mm512_set1_ps(ap[9]); c30 = _mm512_fmadd_ps(a, b0, c30); c31 = _mm512_fmadd_ps(a, b1, c31);
        a = _mm512_set1_ps(ap[10]); c40 = _mm512_fmadd_ps(a, b0, c40); c41 = _mm512_fmadd_ps(a, b1, c41);
        a = _mm512_set1_ps(ap[11]); c50 = _mm512_fmadd_ps(a, b0, c50); c51 = _mm512_fmadd_ps(a, b1, c51);
    }
    for (; p < kc; p++) {
        const float *ap = pa + p * MR;
        __m512 b0 = _mm512_loadu_ps(pb0 + p * PW), b1 = _mm512_loadu_ps(pb1 + p * PW);
        __m512 a;
        a = _mm512_set1_ps(ap[0]); c00 = _mm512_fmadd_ps(a, b0, c00); c01 = _mm512_fmadd_ps(a, b1, c01);
        a = _mm512_set1_ps(ap[1]); c10 = _mm512_fmadd_ps(a, b0, c10); c11 = _mm512_fmadd_ps(a, b1, c11);
        a = _mm512_set1_ps(ap[2]); c20 = _mm512_fmadd_ps(a, b0, c20); c21 = _mm512_fmadd_ps(a, b1, c21);
        a = _mm512_set1_ps(ap[3]); c30 = _mm512_fmadd_ps(a, b0, c30); c31 = _mm512_fmadd_ps(a, b1, c31);
        a = _mm512_set1_ps(ap[4]); c40 = _mm512_fmadd_ps(a, b0, c40); c41 = _mm512_fmadd_ps(a, b1, c41);
        a = _mm512_set1_ps(ap[5]); c50 = _mm512_fmadd_ps(a, b0, c50); c51 = _mm512_fmadd_ps(a, b1, c51);
    }
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    const float *bias0 = e->bias, *bias1 = e->bias ? e->bias + 16 : NULL;
    __m512 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        const float *rp = e->residual ? e->residual + i * e->ldr : NULL;
        store_row_avx512(acc[i][0], c + i * ldc, bias0, rp, m0, e);
        if (m1) store_row_avx512(acc[i][1], c + i * ldc + 16, bias1, rp ? rp + 16 : NULL, m1, e);
    }
}

LCNN_TARGET_AVX512
static void kernel_avx512_6x16(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                               int64_t mr, int64_t nr, const epilogue *e) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (int64_t p = 0; p < kc; p++) {
        const float *ap = pa + p * MR;
        __m512 b = _mm512_loadu_ps(pb + p * PW);
        c0 = _mm512_fmadd_ps(_mm512_set1_ps(ap[0]), b, c0);
        c1 = _mm512_fmadd_ps(_mm512_set1_ps(ap[1]), b, c1);
        c2 = _mm512_fmadd_ps(_mm512_set1_ps(ap[2]), b, c2);
        c3 = _mm512_fmadd_ps(_mm512_set1_ps(ap[3]), b, c3);
        c4 = _mm512_fmadd_ps(_mm512_set1_ps(ap[4]), b, c4);
        c5 = _mm512_fmadd_ps(_mm512_set1_ps(ap[5]), b, c5);
    }
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    __m512 acc[MR] = {c0, c1, c2, c3, c4, c5};
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        store_row_avx512(acc[i], c + i * ldc, e->bias, e->residual ? e->residual + i * e->ldr : NULL, m0, e);
    }
}
#endif

#if LCNN_X86
// MARK: - Direct (unpacked A) AVX2 path

/// One 6 × 16 tile of C = act(A·B + bias + residual) with A read in place (row stride `lda`) over the whole depth
/// `k`: B is the packed operand (`lcnn_pack_b` layout: per KC block `pc`, panel `q` at `pb + pc·stride + q·kc·16`),
/// so the accumulators stay in registers across KC blocks and C is written once. Rows past `mr` read the last valid
/// row and are not stored; columns past `nr` hit the zero padding of the panel and are masked at the store.
LCNN_TARGET_AVX2
static void direct_avx2_6x16(int64_t k, const float *a, int64_t lda, int64_t mr, const float *pb, int64_t stride,
                             int64_t panel, float *c, int64_t ldc, int64_t nr, const float *bias,
                             const float *residual, int64_t ldr, int act) {
    const float *a0 = a, *a1 = mr > 1 ? a0 + lda : a0, *a2 = mr > 2 ? a1 + lda : a1, *a3 = mr > 3 ? a2 + lda : a2,
                *a4 = mr > 4 ? a3 + lda : a3, *a5 = mr > 5 ? a4 + lda : a4;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t pc = 0; pc < k; pc += KC) {
        int64_t kc = k - pc < KC ? k - pc : KC;
        const float *bp = pb + pc * stride + panel * kc * PW;
        for (int64_t p = pc; p < pc + kc; p++, bp += PW) {
            __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8), x;
            x = _mm256_broadcast_ss(a0 + p); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
            x = _mm256_broadcast_ss(a1 + p); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
            x = _mm256_broadcast_ss(a2 + p); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
            x = _mm256_broadcast_ss(a3 + p); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
            x = _mm256_broadcast_ss(a4 + p); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
            x = _mm256_broadcast_ss(a5 + p); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
        }
    }
    if (bias) {
        __m256 v0, v1;
        if (nr >= 16) {
            v0 = _mm256_loadu_ps(bias); v1 = _mm256_loadu_ps(bias + 8);
        } else {
            v0 = _mm256_maskload_ps(bias, lcnn_avx2_lane_mask(nr));
            v1 = nr > 8 ? _mm256_maskload_ps(bias + 8, lcnn_avx2_lane_mask(nr - 8)) : _mm256_setzero_ps();
        }
        c00 = _mm256_add_ps(c00, v0); c01 = _mm256_add_ps(c01, v1); c10 = _mm256_add_ps(c10, v0);
        c11 = _mm256_add_ps(c11, v1); c20 = _mm256_add_ps(c20, v0); c21 = _mm256_add_ps(c21, v1);
        c30 = _mm256_add_ps(c30, v0); c31 = _mm256_add_ps(c31, v1); c40 = _mm256_add_ps(c40, v0);
        c41 = _mm256_add_ps(c41, v1); c50 = _mm256_add_ps(c50, v0); c51 = _mm256_add_ps(c51, v1);
    }
    if (nr >= 16 && !residual && act <= LCNN_ACT_RELU6) {
        // The common case (full tile; no activation, ReLU or ReLU6 as a clamp) without per-row branches.
        // No activation stores the sums as they are (a NaN stays NaN); ReLU/ReLU6 clamp as `lcnn_avx2_activate` does.
        const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(act == LCNN_ACT_RELU6 ? 6.0f : INFINITY);
        const int clamp = act != LCNN_ACT_NONE;
#define LCNN_CLAMP(v) (clamp ? _mm256_min_ps(_mm256_max_ps(v, lo), hi) : (v))
        switch (mr) {
        default: _mm256_storeu_ps(c + 5 * ldc, LCNN_CLAMP(c50)); _mm256_storeu_ps(c + 5 * ldc + 8, LCNN_CLAMP(c51)); // fallthrough
        case 5: _mm256_storeu_ps(c + 4 * ldc, LCNN_CLAMP(c40)); _mm256_storeu_ps(c + 4 * ldc + 8, LCNN_CLAMP(c41)); // fallthrough
        case 4: _mm256_storeu_ps(c + 3 * ldc, LCNN_CLAMP(c30)); _mm256_storeu_ps(c + 3 * ldc + 8, LCNN_CLAMP(c31)); // fallthrough
        case 3: _mm256_storeu_ps(c + 2 * ldc, LCNN_CLAMP(c20)); _mm256_storeu_ps(c + 2 * ldc + 8, LCNN_CLAMP(c21)); // fallthrough
        case 2: _mm256_storeu_ps(c + 1 * ldc, LCNN_CLAMP(c10)); _mm256_storeu_ps(c + 1 * ldc + 8, LCNN_CLAMP(c11)); // fallthrough
        case 1: _mm256_storeu_ps(c, LCNN_CLAMP(c00)); _mm256_storeu_ps(c + 8, LCNN_CLAMP(c01));
        }
#undef LCNN_CLAMP
        return;
    }
    const __m256i m0 = lcnn_avx2_lane_mask(nr < 8 ? nr : 8), m1 = lcnn_avx2_lane_mask(nr > 8 ? (nr < 16 ? nr - 8 : 8) : 0);
    const int full = nr >= 16;
#define LCNN_DIRECT_ROW(i, v0, v1)                                                                               \
    if (mr > i) {                                                                                                \
        float *cp = c + i * ldc;                                                                                 \
        __m256 u0 = v0, u1 = v1;                                                                                 \
        if (residual) {                                                                                          \
            const float *rp = residual + i * ldr;                                                                \
            u0 = _mm256_add_ps(u0, full ? _mm256_loadu_ps(rp) : _mm256_maskload_ps(rp, m0));                     \
            u1 = _mm256_add_ps(u1, full ? _mm256_loadu_ps(rp + 8) : _mm256_maskload_ps(rp + 8, m1));             \
        }                                                                                                        \
        u0 = lcnn_avx2_activate(u0, act);                                                                        \
        u1 = lcnn_avx2_activate(u1, act);                                                                        \
        if (full) { _mm256_storeu_ps(cp, u0); _mm256_storeu_ps(cp + 8, u1); }                                    \
        else { _mm256_maskstore_ps(cp, m0, u0); _mm256_maskstore_ps(cp + 8, m1, u1); }                           \
    }
    LCNN_DIRECT_ROW(0, c00, c01)
    LCNN_DIRECT_ROW(1, c10, c11)
    LCNN_DIRECT_ROW(2, c20, c21)
    LCNN_DIRECT_ROW(3, c30, c31)
    LCNN_DIRECT_ROW(4, c40, c41)
    LCNN_DIRECT_ROW(5, c50, c51)
#undef LCNN_DIRECT_ROW
}

/// One row of C (a matrix-vector product: a classifier at batch 1) for up to 4 packed panels (64 columns) starting
/// at `panel`: eight accumulators, so that the FMA latency is hidden with a single row of A, where the 6×16 tile would
/// keep two busy and compute the other rows for nothing. B streams from memory once; this is bandwidth-bound.
LCNN_TARGET_AVX2
static void direct_avx2_1x64(int64_t k, const float *a, const float *pb, int64_t stride, int64_t panel, float *c,
                             int64_t nr, const float *bias, const float *residual, int act) {
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    const int np = nr > 48 ? 4 : (nr > 32 ? 3 : (nr > 16 ? 2 : 1));
    for (int64_t pc = 0; pc < k; pc += KC) {
        int64_t kc = k - pc < KC ? k - pc : KC;
        const float *b0 = pb + pc * stride + panel * kc * PW;
        const float *b1 = np > 1 ? b0 + kc * PW : b0, *b2 = np > 2 ? b1 + kc * PW : b0, *b3 = np > 3 ? b2 + kc * PW : b0;
        for (int64_t p = 0; p < kc; p++) {
            __m256 x = _mm256_broadcast_ss(a + pc + p);
            c0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + p * PW), c0);
            c1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + p * PW + 8), c1);
            if (np > 1) {
                c2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + p * PW), c2);
                c3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + p * PW + 8), c3);
            }
            if (np > 2) {
                c4 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + p * PW), c4);
                c5 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + p * PW + 8), c5);
            }
            if (np > 3) {
                c6 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + p * PW), c6);
                c7 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + p * PW + 8), c7);
            }
        }
    }
    __m256 acc[8] = {c0, c1, c2, c3, c4, c5, c6, c7};
    for (int v = 0; v < 8; v++) {
        int64_t lanes = nr - 8 * v;
        if (lanes <= 0) break;
        if (lanes > 8) lanes = 8;
        __m256i mask = lcnn_avx2_lane_mask(lanes);
        __m256 x = acc[v];
        if (bias) x = _mm256_add_ps(x, _mm256_maskload_ps(bias + 8 * v, mask));
        if (residual) x = _mm256_add_ps(x, _mm256_maskload_ps(residual + 8 * v, mask));
        x = lcnn_avx2_activate(x, act);
        if (lanes == 8) _mm256_storeu_ps(c + 8 * v, x);
        else _mm256_maskstore_ps(c + 8 * v, mask, x);
    }
}

/// C = act(A·B + bias + residual) for a packed B column slice, A unpacked: column blocks sized so that their
/// packed panels (k × 16 each) stay in L2, then 6-row tiles of A (in L1 across the block's panels).
static void gemm_direct_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *packedB,
                             int64_t stride, int64_t panel0, float *c, int64_t ldc, const float *bias,
                             const float *residual, int64_t ldr, int act) {
    if (m == 1) {
        for (int64_t j = 0; j < n; j += 4 * PW) {
            int64_t nr = n - j < 4 * PW ? n - j : 4 * PW;
            direct_avx2_1x64(k, a, packedB, stride, panel0 + j / PW, c + j, nr, bias ? bias + j : NULL,
                             residual ? residual + j : NULL, act);
        }
        return;
    }
    int64_t blockPanels = (96 * 1024 / 4) / (k * PW);
    if (blockPanels < 1) blockPanels = 1;
    for (int64_t jb = 0; jb < n; jb += blockPanels * PW) {
        int64_t je = jb + blockPanels * PW < n ? jb + blockPanels * PW : n;
        for (int64_t i = 0; i < m; i += MR) {
            int64_t mr = m - i < MR ? m - i : MR;
            // Short reductions make this loop store-bound when C is larger than the cache: ask for the lines of the
            // tile two steps ahead in a writable state now, so that its stores do not wait for them.
            const int prefetchC = k <= 64 && i + 3 * MR <= m;
            for (int64_t j = jb; j < je; j += PW) {
                int64_t nr = je - j < PW ? je - j : PW;
                if (prefetchC) {
                    float *ahead = c + (i + 2 * MR) * ldc + j;
                    for (int r = 0; r < MR; r++) _mm_prefetch((const char *)(ahead + r * ldc), _MM_HINT_ET0);
                }
                direct_avx2_6x16(k, a + i * lda, lda, mr, packedB, stride, panel0 + j / PW, c + i * ldc + j, ldc, nr,
                                 bias ? bias + j : NULL, residual ? residual + i * ldr + j : NULL, ldr, act);
            }
        }
    }
}
#endif

#if LCNN_X86
/// The operands a direct AVX-512 product shares between its tiles: depth, B packed (`lcnn_pack_b` layout, panel
/// stride `stride`), the row strides of A, C and the residual, and the activation.
typedef struct {
    int64_t k, lda, stride, ldc, ldr;
    const float *packedB;
    int act;
} direct_operands;

/// The AVX-512 direct tile: `MRR` rows (4, 6, 7, 8 or 12) × `NP` packed panels of 16 columns (1 to 4; `MRR·NP ≤ 24`
/// accumulators) of C = act(A·B + bias + residual), A read in place over the whole depth as in `direct_avx2_6x16`
/// (B's KC blocks walked inside, C written once). Columns past `nr` hit the panels' zero padding and are masked at
/// the store; rows past `mr` repeat the last row and are not stored. The epilogue adds bias and residual to the
/// accumulators, then applies the activation with one switch for the whole tile (a switch per stored vector cost
/// a quarter of the time of a K = 16 product). With `PF > 0` every k-step prefetches each panel `PF` k-steps ahead.
LCNN_TARGET_AVX512
LCNN_INLINE void direct_avx512_tile(const int MRR, const int NP, const int PF, const direct_operands *d, const float *a,
                                    int64_t mr, int64_t panel, float *c, int64_t nr, const float *bias,
                                    const float *residual) {
    const int64_t k = d->k, lda = d->lda, stride = d->stride, ldc = d->ldc, ldr = d->ldr;
    const float *pb = d->packedB;
    const int act = d->act;
    __m512 acc[12][4];
    const float *row[12];
#pragma clang loop unroll(full)
    for (int i = 0; i < MRR; i++) {
        row[i] = a + (i < mr ? i : mr - 1) * lda;
#pragma clang loop unroll(full)
        for (int j = 0; j < NP; j++) acc[i][j] = _mm512_setzero_ps();
    }
    for (int64_t pc = 0; pc < k; pc += KC) {
        int64_t kc = k - pc < KC ? k - pc : KC;
        const float *bp = pb + pc * stride + panel * kc * PW;
        for (int64_t p = pc; p < pc + kc; p++, bp += PW) {
            __m512 b[4];
#pragma clang loop unroll(full)
            for (int j = 0; j < NP; j++) b[j] = _mm512_loadu_ps(bp + j * kc * PW);
            if (PF) {
#pragma clang loop unroll(full)
                for (int j = 0; j < NP; j++) _mm_prefetch((const char *)(bp + j * kc * PW + PF * PW), _MM_HINT_T0);
            }
#pragma clang loop unroll(full)
            for (int i = 0; i < MRR; i++) {
                __m512 x = _mm512_set1_ps(row[i][p]);
#pragma clang loop unroll(full)
                for (int j = 0; j < NP; j++) acc[i][j] = _mm512_fmadd_ps(x, b[j], acc[i][j]);
            }
        }
    }
    __mmask16 mask[4];
#pragma clang loop unroll(full)
    for (int j = 0; j < NP; j++) {
        mask[j] = lcnn_avx512_lanes(nr - PW * j);
        if (bias) {
            __m512 v = _mm512_maskz_loadu_ps(mask[j], bias + PW * j);
#pragma clang loop unroll(full)
            for (int i = 0; i < MRR; i++) acc[i][j] = _mm512_add_ps(acc[i][j], v);
        }
    }
    if (residual) {
#pragma clang loop unroll(full)
        for (int i = 0; i < MRR; i++) {
            const float *r = residual + (i < mr ? i : mr - 1) * ldr;
#pragma clang loop unroll(full)
            for (int j = 0; j < NP; j++)
                acc[i][j] = _mm512_add_ps(acc[i][j], _mm512_maskz_loadu_ps(mask[j], r + PW * j));
        }
    }
    switch (act) {
    case LCNN_ACT_NONE: break;
    case LCNN_ACT_RELU:
#pragma clang loop unroll(full)
        for (int i = 0; i < MRR; i++)
#pragma clang loop unroll(full)
            for (int j = 0; j < NP; j++) acc[i][j] = _mm512_max_ps(acc[i][j], _mm512_setzero_ps());
        break;
    default:
#pragma clang loop unroll(full)
        for (int i = 0; i < MRR; i++)
#pragma clang loop unroll(full)
            for (int j = 0; j < NP; j++) acc[i][j] = lcnn_avx512_activate(acc[i][j], act);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MRR; i++) {
        if (i >= mr) break;
#pragma clang loop unroll(full)
        for (int j = 0; j < NP; j++) _mm512_mask_storeu_ps(c + i * ldc + PW * j, mask[j], acc[i][j]);
    }
}

/// One row of C over up to 8 packed panels (128 columns) from `panel`, AVX-512: a matrix-vector product (a classifier
/// at batch 1), one accumulator per panel so that eight independent chains hide the FMA latency and eight B streams
/// keep the memory system busy. Bandwidth-bound.
LCNN_TARGET_AVX512
static void direct_avx512_1x128(int64_t k, const float *a, const float *pb, int64_t stride, int64_t panel, float *c,
                                int64_t nr, const float *bias, const float *residual, int act) {
    __m512 acc[8];
    const int np = (int)((nr + PW - 1) / PW);
#pragma clang loop unroll(full)
    for (int v = 0; v < 8; v++) acc[v] = _mm512_setzero_ps();
    for (int64_t pc = 0; pc < k; pc += KC) {
        int64_t kc = k - pc < KC ? k - pc : KC;
        const float *b0 = pb + pc * stride + panel * kc * PW;
        if (np == 8) {
            for (int64_t p = 0; p < kc; p++) {
                __m512 x = _mm512_set1_ps(a[pc + p]);
#pragma clang loop unroll(full)
                for (int v = 0; v < 8; v++) acc[v] = _mm512_fmadd_ps(x, _mm512_loadu_ps(b0 + v * kc * PW + p * PW), acc[v]);
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                __m512 x = _mm512_set1_ps(a[pc + p]);
                for (int v = 0; v < np; v++) acc[v] = _mm512_fmadd_ps(x, _mm512_loadu_ps(b0 + v * kc * PW + p * PW), acc[v]);
            }
        }
    }
    for (int v = 0; v < np; v++) {
        int64_t lanes = nr - PW * v;
        __mmask16 mask = lcnn_avx512_lanes(lanes);
        __m512 x = acc[v];
        if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, bias + PW * v));
        if (residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask, residual + PW * v));
        _mm512_mask_storeu_ps(c + PW * v, mask, lcnn_avx512_activate(x, act));
    }
}

/// Cycles per k-step of the tiles covering `panels` panels of one row block with `rows × np` tiles: a tile of `r` rows
/// and `p` panels issues `r·p` FMAs and `r + p` loads, two of either per cycle.
static int64_t direct_avx512_row_block_cost(int64_t panels, int rows, int np) {
    const int64_t whole = panels / np, rest = panels % np;
    const int64_t full = rows * np > rows + np ? rows * np : rows + np;
    const int64_t part = rest == 0 ? 0 : rows * rest > rows + rest ? rows * rest : rows + rest;
    return whole * full + part;
}

/// Rows per AVX-512 direct tile for an `m` × `n` product of depth `k`: of 6 (× 32 columns), 7 and 8 rows (× 48), the
/// height whose tiles cost least under `direct_avx512_row_block_cost` (rows padded to whole tiles, narrow tiles at the
/// right edge), 6 on a tie; below K = 256 the taller tiles count 5 % more (the 6 × 32 tile is the faster one on
/// short reductions: K ≤ 64, 5–10 % on one core of the Zen 5 VM). A 7 × 7 map (49 pixels) takes seven 7-row tiles
/// where 6-row tiles computed 54 rows; 14 × 14 (196) takes 7 rows at K = 512 (−4 %); at batch 8 a classifier takes one
/// 8-row tile instead of two 6-row ones; 3136 × 64 keeps 6 (7 would leave a one-panel tile in every row block). Up to
/// 4 rows take a 4-row tile (× 64 columns). Rows that leave one over after 7-row tiles end in an 8-row tile instead of
/// a lone row computed as seven (SqueezeNet's classifier, 169 × 1000 × 512: 696 → 660 µs). A product of at most 16 columns (SqueezeNet's squeeze layers, 3025 × 16)
/// takes 12 × 16 tiles: a 6-row tile over one panel keeps only six FMA chains in flight and issues 7 loads per 6 FMAs
/// (3025×16×128: 68 → 57 µs, 12544×16×32: 85 → 75 µs; 16 rows was slower than 12, and 10 × 32 gained nothing on
/// 32 columns).
static int direct_avx512_rows(int64_t m, int64_t n, int64_t k) {
    if (m <= 4) return 4;
    const int64_t panels = (n + PW - 1) / PW;
    if (panels == 1 && m >= 12) return 12;
    int best = 6;
    int64_t bestCost = 100 * ((m + 5) / 6) * direct_avx512_row_block_cost(panels, 6, 2);
    for (int r = 7; r <= 8; r++) {
        // 7-row tiles end in one 8-row tile instead of a lone row (13 × 13 = 169 = 7·23 + 8).
        const int64_t tiles = r == 7 && m % 7 == 1 ? m / 7 : (m + r - 1) / r;
        const int64_t cost = (k < 256 ? 105 : 100) * tiles * direct_avx512_row_block_cost(panels, r, 3);
        if (cost < bestCost) { best = r; bestCost = cost; }
    }
    return best;
}

/// One row block `[i, i + mr)` of the direct product over columns `[jb, je)` (`a`, `c`, `residual` at row i), tiles
/// of `MRR` rows × `NP` panels, the right edge with as many panels as remain.
LCNN_TARGET_AVX512
LCNN_INLINE void direct_avx512_rows_block(const int MRR, const int NP, const int PF, const direct_operands *d,
                                          const float *a, int64_t mr, int64_t jb, int64_t je, int64_t panel0, float *c,
                                          const float *bias, const float *residual) {
    for (int64_t j = jb; j < je; j += NP * PW) {
        int64_t nr = je - j < NP * PW ? je - j : NP * PW, q = panel0 + j / PW;
        int panels = (int)((nr + PW - 1) / PW);
        const float *bj = bias ? bias + j : NULL, *rj = residual ? residual + j : NULL;
        if (panels >= NP) direct_avx512_tile(MRR, NP, PF, d, a, mr, q, c + j, nr, bj, rj);
        else if (NP > 3 && panels == 3) direct_avx512_tile(MRR, 3, PF, d, a, mr, q, c + j, nr, bj, rj);
        else if (NP > 2 && panels == 2) direct_avx512_tile(MRR, 2, PF, d, a, mr, q, c + j, nr, bj, rj);
        else direct_avx512_tile(MRR, 1, PF, d, a, mr, q, c + j, nr, bj, rj);
    }
}

/// `gemm_direct_avx2` with AVX-512 tiles of `direct_avx512_rows(m, n, k)` rows: column blocks sized so that their packed
/// panels stay in L2, then row tiles of A read in place.
LCNN_TARGET_AVX512
static void gemm_direct_avx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *packedB,
                               int64_t stride, int64_t panel0, float *c, int64_t ldc, const float *bias,
                               const float *residual, int64_t ldr, int act) {
    if (m == 1) {
        for (int64_t j = 0; j < n; j += 8 * PW) {
            int64_t nr = n - j < 8 * PW ? n - j : 8 * PW;
            direct_avx512_1x128(k, a, packedB, stride, panel0 + j / PW, c + j, nr, bias ? bias + j : NULL,
                                residual ? residual + j : NULL, act);
        }
        return;
    }
    const direct_operands d = {k, lda, stride, ldc, ldr, packedB, act};
    const int rows = direct_avx512_rows(m, n, k), np = rows == 4 ? 4 : rows == 6 ? 2 : rows == 12 ? 1 : 3;
    int64_t blockPanels = (192 * 1024 / 4) / (k * PW);
    if (blockPanels < np) blockPanels = np;
    blockPanels -= blockPanels % np;
    for (int64_t jb = 0; jb < n; jb += blockPanels * PW) {
        int64_t je = jb + blockPanels * PW < n ? jb + blockPanels * PW : n;
        for (int64_t i = 0; i < m;) {
            const int height = rows == 7 && m - i == 8 ? 8 : rows;
            int64_t mr = m - i < height ? m - i : height;
            const float *ai = a + i * lda, *ri = residual ? residual + i * ldr : NULL;
            float *ci = c + i * ldc;
            // C's rows two tiles ahead are prefetched for writing: a large output (MobileNet's 112×112×64, 3.2 MB)
            // is out of cache, and each store would otherwise wait for its line (first 1×1 layer: 265 → 217 µs).
            for (int64_t r = i + 2 * height, end = r + height < m ? r + height : m; r < end; r++)
                for (int64_t off = 0; off < (je - jb) * (int64_t)sizeof(float); off += 64)
                    _mm_prefetch((const char *)(c + r * ldc + jb) + off, _MM_HINT_ET0);
            // The first row tile of a column block brings the block's weights from memory, prefetching 32 k-steps
            // ahead on every panel (MobileNet V1's 7×7 1×1 layer with weights out of L2: 545 → 480 µs on one core);
            // the other tiles find them in L2.
#define LCNN_ROWS_BLOCK(R, P)                                                                                     \
            if (i == 0) direct_avx512_rows_block(R, P, 32, &d, ai, mr, jb, je, panel0, ci, bias, ri);            \
            else direct_avx512_rows_block(R, P, 0, &d, ai, mr, jb, je, panel0, ci, bias, ri);
            switch (height) {
            case 4: LCNN_ROWS_BLOCK(4, 4) break;
            case 6: LCNN_ROWS_BLOCK(6, 2) break;
            case 7: LCNN_ROWS_BLOCK(7, 3) break;
            case 12: LCNN_ROWS_BLOCK(12, 1) break;
            default: LCNN_ROWS_BLOCK(8, 3)
            }
#undef LCNN_ROWS_BLOCK
            i += mr;
        }
    }
}
#endif

// MARK: - Macro-kernel

/// Multiplies a packed A block (mc × kc) by a packed B block (kc × nc) into C.
static void macro_kernel(int level, int64_t mc, int64_t nc, int64_t kc, const float *pa, const float *pb,
                         float *c, int64_t ldc, epilogue e, const float *bias, const float *residual) {
#if LCNN_X86
    if (level >= 2) {
        for (int64_t jr = 0; jr < nc; jr += 2 * PW) {
            int64_t nr = nc - jr < 2 * PW ? nc - jr : 2 * PW;
            const float *pb0 = pb + (jr / PW) * kc * PW;
            e.bias = bias ? bias + jr : NULL;
            for (int64_t ir = 0; ir < mc; ir += MR) {
                int64_t mr = mc - ir < MR ? mc - ir : MR;
                const float *pap = pa + (ir / MR) * kc * MR;
                e.residual = residual ? residual + ir * e.ldr + jr : NULL;
                if (nr > PW) kernel_avx512_6x32(kc, pap, pb0, pb0 + kc * PW, c + ir * ldc + jr, ldc, mr, nr, &e);
                else kernel_avx512_6x16(kc, pap, pb0, c + ir * ldc + jr, ldc, mr, nr, &e);
            }
        }
        return;
    }
#endif
    for (int64_t jr = 0; jr < nc; jr += PW) {
        int64_t nr = nc - jr < PW ? nc - jr : PW;
        const float *pbp = pb + (jr / PW) * kc * PW;
        e.bias = bias ? bias + jr : NULL;
        for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t mr = mc - ir < MR ? mc - ir : MR;
            const float *pap = pa + (ir / MR) * kc * MR;
            e.residual = residual ? residual + ir * e.ldr + jr : NULL;
#if LCNN_X86
            if (level >= 1) { kernel_avx2_6x16(kc, pap, pbp, c + ir * ldc + jr, ldc, mr, nr, &e); continue; }
#endif
            kernel_portable_6x16(kc, pap, pbp, c + ir * ldc + jr, ldc, mr, nr, &e);
        }
    }
}

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

void lcnn_gemm_core(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    int transB, const float *b, int64_t ldb, const float *packedB,
                    float beta, float *c, int64_t ldc, const float *bias, int act) {
    lcnn_gemm_core_ex(transA, m, n, k, alpha, a, lda, transB, b, ldb, packedB, beta, c, ldc, bias, NULL, 0, act);
}

void lcnn_gemm_core_ex(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                       int transB, const float *b, int64_t ldb, const float *packedB,
                       float beta, float *c, int64_t ldc, const float *bias, const float *residual, int64_t ldr,
                       int act) {
    lcnn_gemm_core_sub(transA, m, n, k, alpha, a, lda, transB, b, ldb, packedB, round_up(n, PW), 0, beta, c, ldc,
                       bias, residual, ldr, act);
}

void lcnn_gemm_core_sub(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                        int transB, const float *b, int64_t ldb, const float *packedB, int64_t packedStride,
                        int64_t panelOffset, float beta, float *c, int64_t ldc, const float *bias,
                        const float *residual, int64_t ldr, int act) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (int64_t i = 0; i < m; i++) {
            for (int64_t j = 0; j < n; j++) {
                float v = beta == 0 ? 0 : beta * c[i * ldc + j];
                if (bias) v += bias[j];
                if (residual) v += residual[i * ldr + j];
                c[i * ldc + j] = activate(v, act);
            }
        }
        return;
    }
    int level = lcnn_isa_level();
#if LCNN_X86
    if (level == 1 && packedB && !transA && alpha == 1 && beta == 0) {
        gemm_direct_avx2(m, n, k, a, lda, packedB, packedStride, panelOffset, c, ldc, bias, residual, ldr, act);
        return;
    }
    if (level >= 2 && packedB && !transA && alpha == 1 && beta == 0) {
        gemm_direct_avx512(m, n, k, a, lda, packedB, packedStride, panelOffset, c, ldc, bias, residual, ldr, act);
        return;
    }
#endif
    int64_t mcMax = m < MC ? round_up(m, MR) : MC;
    float *bufA = lcnn_scratch(LCNN_SCRATCH_A, mcMax * (k < KC ? k : KC));
    int64_t ncStep = packedB ? n : NC;
    float *bufB = packedB ? NULL : lcnn_scratch(LCNN_SCRATCH_B, round_up(n < NC ? n : NC, PW) * (k < KC ? k : KC));
    for (int64_t jc = 0; jc < n; jc += ncStep) {
        int64_t nc = n - jc < ncStep ? n - jc : ncStep;
        for (int64_t pc = 0; pc < k; pc += KC) {
            int64_t kc = k - pc < KC ? k - pc : KC;
            const float *pb;
            if (packedB) {
                pb = packedB + pc * packedStride + panelOffset * kc * PW;
            } else {
                const float *bsrc = transB ? b + jc * ldb + pc : b + pc * ldb + jc;
                pack_b_block(transB, kc, nc, bsrc, ldb, bufB);
                pb = bufB;
            }
            epilogue e = {alpha, beta, NULL, NULL, ldr, pc == 0, pc + kc >= k, act};
            for (int64_t ic = 0; ic < m; ic += MC) {
                int64_t mc = m - ic < MC ? m - ic : MC;
                const float *asrc = transA ? a + pc * lda + ic : a + ic * lda + pc;
                pack_a_block(transA, mc, kc, asrc, lda, bufA);
                macro_kernel(level, mc, nc, kc, bufA, pb, c + ic * ldc + jc, ldc, e, bias ? bias + jc : NULL,
                             residual ? residual + ic * ldr + jc : NULL);
            }
        }
    }
}

// MARK: - Public entry points

void lcnn_sgemm(int transA, int transB, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb,
                float beta, float *c, int64_t ldc, const float *bias, int act) {
    lcnn_gemm_core(transA, m, n, k, alpha, a, lda, transB, b, ldb, NULL, beta, c, ldc, bias, act);
}

int64_t lcnn_packed_b_count(int64_t k, int64_t n) { return round_up(n, PW) * (k > 0 ? k : 0); }

void lcnn_pack_b(int transB, int64_t k, int64_t n, const float *b, int64_t ldb, float *packed) {
    lcnn_pack_b_columns(transB, k, n, 0, n, b, ldb, packed);
}

void lcnn_pack_b_columns(int transB, int64_t k, int64_t n, int64_t n0, int64_t nc, const float *b, int64_t ldb,
                         float *packed) {
    if (n0 % PW != 0 || n0 < 0 || nc < 0 || n0 + nc > n) abort();  // a programming error: panels would overlap
    int64_t stride = round_up(n, PW);
    for (int64_t pc = 0; pc < k; pc += KC) {
        int64_t kc = k - pc < KC ? k - pc : KC;
        pack_b_block(transB, kc, nc, transB ? b + pc : b + pc * ldb, ldb, packed + pc * stride + (n0 / PW) * kc * PW);
    }
}

void lcnn_sgemm_packed(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                       const float *packedB, float beta, float *c, int64_t ldc, const float *bias, int act) {
    lcnn_gemm_core(transA, m, n, k, alpha, a, lda, 0, NULL, 0, packedB, beta, c, ldc, bias, act);
}

void lcnn_sgemm_packed_residual(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                                const float *packedB, float beta, float *c, int64_t ldc, const float *bias,
                                const float *residual, int64_t ldr, int act) {
    lcnn_gemm_core_ex(transA, m, n, k, alpha, a, lda, 0, NULL, 0, packedB, beta, c, ldc, bias, residual, ldr, act);
}
