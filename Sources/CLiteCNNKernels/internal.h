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

/// A thread-local scratch buffer of at least `count` floats, 64-byte aligned, reused across calls.
float *lcnn_scratch(int slot, int64_t count);

/// The per-thread single-threaded GEMM core: op(B) either packed (`packedB != NULL`) or read from b/ldb/transB.
void lcnn_gemm_core(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    int transB, const float *b, int64_t ldb, const float *packedB,
                    float beta, float *c, int64_t ldc, const float *bias, int act);

enum { LCNN_SCRATCH_A = 0, LCNN_SCRATCH_B = 1, LCNN_SCRATCH_COLS = 2, LCNN_SCRATCH_COUNT = 3 };

#endif
