#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include "litecnn_kernels.h"

#include <stdlib.h>
#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
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

int lcnn_worker_processor(int index) {
#if defined(__linux__)
    cpu_set_t allowed;
    if (index < 1 || sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return -1;
    const int own = sched_getcpu();
    int others = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) others += CPU_ISSET(cpu, &allowed) && cpu != own;
    if (others < index) return -1;
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && cpu != own && ++seen == index) return cpu;
    }
#else
    (void)index;
#endif
    return -1;
}

int lcnn_current_processor(void) {
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

int lcnn_pin_current_thread(int processor) {
#if defined(__linux__)
    if (processor < 0 || processor >= CPU_SETSIZE) return -1;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(processor, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0 ? 0 : -1;
#else
    (void)processor;
    return -1;
#endif
}

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
    static int enabled = -1;  // LITECNN_HUGE_PAGES=0 turns the advice off (read once)
    if (enabled < 0) {
        const char *setting = getenv("LITECNN_HUGE_PAGES");
        enabled = !(setting && setting[0] == '0');
    }
    if (!enabled) return -1;
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

// Every block carries a 64-byte header just below the returned pointer: where the underlying allocation starts, its
// length (0 for a malloc'd block) and a tag that catches frees of foreign pointers.
enum { LARGE_BLOCK = 2 << 20, HEADER = 64 };
static const uint64_t block_tag = 0x4c434e4e424c4b31ull;  // "LCNNBLK1"

typedef struct {
    void *base;
    size_t length;
    uint64_t tag;
} block_header;

void *lcnn_aligned_alloc(size_t bytes) { return lcnn_aligned_alloc_pages(bytes, 1); }

void *lcnn_aligned_alloc_pages(size_t bytes, int hugePages) {
    if (bytes > SIZE_MAX / 2) return NULL;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (bytes >= LARGE_BLOCK) {
        // Map enough to place a 2 MiB-aligned start with a header page before it, then give back the slack.
        const size_t page = 4096;
        size_t length = bytes + LARGE_BLOCK + page;
        void *mapped = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) return NULL;
        uintptr_t base = (uintptr_t)mapped;
        uintptr_t start = (base + page + LARGE_BLOCK - 1) & ~((uintptr_t)LARGE_BLOCK - 1);
        uintptr_t head = start - page;  // keep one page below `start` for the header
        if (head > base) munmap(mapped, head - base);
        uintptr_t end = start + ((bytes + page - 1) & ~(page - 1));
        uintptr_t mappedEnd = base + length;
        if (mappedEnd > end) munmap((void *)end, mappedEnd - end);
        if (hugePages) (void)lcnn_advise_huge_pages((void *)start, end - start);
        block_header *h = (block_header *)(start - HEADER);
        h->base = (void *)head;
        h->length = end - head;
        h->tag = block_tag;
        return (void *)start;
    }
#endif
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes + HEADER) != 0) return NULL;
    block_header *h = (block_header *)p;
    h->base = p;
    h->length = 0;
    h->tag = block_tag;
    return (char *)p + HEADER;
}

void lcnn_aligned_free(void *pointer) {
    if (!pointer) return;
    block_header *h = (block_header *)((char *)pointer - HEADER);
    if (h->tag != block_tag) abort();  // not a block of lcnn_aligned_alloc: freeing it would corrupt the heap
    h->tag = 0;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (h->length > 0) {
        munmap(h->base, h->length);
        return;
    }
#endif
    free(h->base);
}
