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

#if LCNN_X86
/// An AVX2 lane mask selecting the first `count` (0…8) of eight floats, for `_mm256_maskload_ps` / `maskstore`.
LCNN_TARGET_AVX2
LCNN_INLINE __m256i lcnn_avx2_lane_mask(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

/// A thread-local scratch buffer of at least `count` floats, 64-byte aligned, reused across calls.
float *lcnn_scratch(int slot, int64_t count);

/// The per-thread single-threaded GEMM core: op(B) either packed (`packedB != NULL`) or read from b/ldb/transB.
void lcnn_gemm_core(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    int transB, const float *b, int64_t ldb, const float *packedB,
                    float beta, float *c, int64_t ldc, const float *bias, int act);

enum { LCNN_SCRATCH_A = 0, LCNN_SCRATCH_B = 1, LCNN_SCRATCH_COLS = 2, LCNN_SCRATCH_COUNT = 3 };

#endif
