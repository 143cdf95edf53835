// Shared helpers of the C kernels (not part of the public header).
#ifndef LITECNN_INTERNAL_H
#define LITECNN_INTERNAL_H

#include "litecnn_kernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LCNN_X86 1
#include <immintrin.h>
#define LCNN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define LCNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define LCNN_X86 0
#endif

#define LCNN_INLINE static inline __attribute__((always_inline))

#include <math.h>

/// Scalar `LCNN_ACT_*` activation (the definition the vector versions follow).
LCNN_INLINE float lcnn_activate(float v, int act) {
    switch (act) {
    case LCNN_ACT_RELU: return v > 0 ? v : 0;
    case LCNN_ACT_RELU6: return v < 0 ? 0 : (v > 6 ? 6 : v);
    case LCNN_ACT_HARDSWISH: { float t = v + 3; t = t < 0 ? 0 : (t > 6 ? 6 : t); return v * t * (1.0f / 6); }
    case LCNN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case LCNN_ACT_HARDSIGMOID: { float t = v * (1.0f / 6) + 0.5f; return t < 0 ? 0 : (t > 1 ? 1 : t); }
    case LCNN_ACT_SILU: return v / (1.0f + expf(-v));
    default: return v;
    }
}

#if LCNN_X86
/// An AVX2 lane mask selecting the first `count` (0…8) of eight floats, for `_mm256_maskload_ps` / `maskstore`.
LCNN_TARGET_AVX2
LCNN_INLINE __m256i lcnn_avx2_lane_mask(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// exp(x) for eight floats (Cephes-style degree-5 polynomial after range reduction; relative error ~2e-7),
/// clamped to [-87.3, 88.3] so the result stays a normal float.
LCNN_TARGET_AVX2
LCNN_INLINE __m256 lcnn_avx2_exp(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/// An AVX-512 mask of the first `count` of 16 lanes (all for 16 or more, none for 0 or less).
LCNN_INLINE __mmask16 lcnn_avx512_lanes(int64_t count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

/// `lcnn_activate` on eight floats.
LCNN_TARGET_AVX2
LCNN_INLINE __m256 lcnn_avx2_activate(__m256 v, int act) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1), six = _mm256_set1_ps(6);
    switch (act) {
    case LCNN_ACT_RELU: return _mm256_max_ps(v, zero);
    case LCNN_ACT_RELU6: return _mm256_min_ps(_mm256_max_ps(v, zero), six);
    case LCNN_ACT_HARDSWISH: {
        __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, _mm256_set1_ps(3)), zero), six);
        return _mm256_mul_ps(_mm256_mul_ps(v, t), _mm256_set1_ps(1.0f / 6));
    }
    case LCNN_ACT_SIGMOID:
        return _mm256_div_ps(one, _mm256_add_ps(one, lcnn_avx2_exp(_mm256_sub_ps(zero, v))));
    case LCNN_ACT_HARDSIGMOID:
        return _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(v, _mm256_set1_ps(1.0f / 6), _mm256_set1_ps(0.5f)), zero), one);
    case LCNN_ACT_SILU:
        return _mm256_div_ps(v, _mm256_add_ps(one, lcnn_avx2_exp(_mm256_sub_ps(zero, v))));
    default: return v;
    }
}

/// exp(x) for sixteen floats (same method as `lcnn_avx2_exp`).
LCNN_TARGET_AVX512
LCNN_INLINE __m512 lcnn_avx512_exp(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

/// `lcnn_activate` on sixteen floats.
LCNN_TARGET_AVX512
LCNN_INLINE __m512 lcnn_avx512_activate(__m512 v, int act) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1), six = _mm512_set1_ps(6);
    switch (act) {
    case LCNN_ACT_RELU: return _mm512_max_ps(v, zero);
    case LCNN_ACT_RELU6: return _mm512_min_ps(_mm512_max_ps(v, zero), six);
    case LCNN_ACT_HARDSWISH: {
        __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, _mm512_set1_ps(3)), zero), six);
        return _mm512_mul_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(1.0f / 6));
    }
    case LCNN_ACT_SIGMOID:
        return _mm512_div_ps(one, _mm512_add_ps(one, lcnn_avx512_exp(_mm512_sub_ps(zero, v))));
    case LCNN_ACT_HARDSIGMOID:
        return _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(v, _mm512_set1_ps(1.0f / 6), _mm512_set1_ps(0.5f)), zero), one);
    case LCNN_ACT_SILU:
        return _mm512_div_ps(v, _mm512_add_ps(one, lcnn_avx512_exp(_mm512_sub_ps(zero, v))));
    default: return v;
    }
}
#endif

/// A thread-local scratch buffer of at least `count` floats, 64-byte aligned, reused across calls.
float *lcnn_scratch(int slot, int64_t count);

/// `lcnn_gemm_core` with an optional residual (`residual[i·ldr + j]`, added after bias and before the activation;
/// must not alias C).
void lcnn_gemm_core_ex(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                       int transB, const float *b, int64_t ldb, const float *packedB,
                       float beta, float *c, int64_t ldc, const float *bias, const float *residual, int64_t ldr, int act);

/// `lcnn_gemm_core_ex` on a column slice of a matrix packed by `lcnn_pack_b(…, k, N, …)`: `packedStride` is
/// `round_up(N, 16)` of the whole matrix and the slice starts at column `16·panelOffset`.
void lcnn_gemm_core_sub(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                        int transB, const float *b, int64_t ldb, const float *packedB, int64_t packedStride,
                        int64_t panelOffset, float beta, float *c, int64_t ldc, const float *bias,
                        const float *residual, int64_t ldr, int act);

/// Depth of one block of the packed B layout (`lcnn_pack_b`): rows k of B are packed in blocks of this many.
#define LCNN_GEMM_KC 256

/// The per-thread single-threaded GEMM core: op(B) either packed (`packedB != NULL`) or read from b/ldb/transB.
void lcnn_gemm_core(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    int transB, const float *b, int64_t ldb, const float *packedB,
                    float beta, float *c, int64_t ldc, const float *bias, int act);

enum { LCNN_SCRATCH_A = 0, LCNN_SCRATCH_B = 1, LCNN_SCRATCH_COLS = 2, LCNN_SCRATCH_WINO_V = 3, LCNN_SCRATCH_WINO_M = 4,
       LCNN_SCRATCH_SLAB = 5, LCNN_SCRATCH_POOL = 6, LCNN_SCRATCH_ROW = 7, LCNN_SCRATCH_BAND = 8,
       LCNN_SCRATCH_COUNT = 9 };

#endif
