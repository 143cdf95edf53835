#include "litecnn_kernels.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
void lcnn_cpu_relax(void) { _mm_pause(); }
#elif defined(__aarch64__)
void lcnn_cpu_relax(void) { __asm__ __volatile__("yield"); }
#else
void lcnn_cpu_relax(void) {}
#endif

static int detected_level = -1;
static int forced_level = 99;

static int detect(void) {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int lcnn_isa_level(void) {
    if (detected_level < 0) detected_level = detect();
    return detected_level < forced_level ? detected_level : forced_level;
}

int lcnn_set_isa_level(int level) {
    forced_level = level;
    return lcnn_isa_level();
}

int lcnn_advise_huge_pages(void *pointer, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t start = ((uintptr_t)pointer + huge - 1) & ~(huge - 1);
    uintptr_t end = ((uintptr_t)pointer + bytes) & ~(huge - 1);
    if (end <= start) return -1;
    return madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
    (void)pointer; (void)bytes;
    return -1;
#endif
}
