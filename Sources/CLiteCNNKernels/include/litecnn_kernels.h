// LiteCNN's hot kernels in C.
//
// Each kernel has a portable body and, on x86-64, AVX-512 / AVX2+FMA bodies compiled with per-function
// `__attribute__((target(...)))`. The choice is made once at run time from CPUID, so no build flag
// (`-march=native`, `unsafeFlags`) is needed for speed. All matrices are row-major float32.
#ifndef LITECNN_KERNELS_H
#define LITECNN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A pause hint for spin-wait loops (PAUSE on x86, YIELD on ARM).
void lcnn_cpu_relax(void);

/// The instruction set the kernels dispatched to: 0 portable, 1 AVX2+FMA, 2 AVX-512.
int lcnn_isa_level(void);

/// Forces a lower instruction-set level (for testing the fallbacks); returns the level in force.
int lcnn_set_isa_level(int level);

#ifdef __cplusplus
}
#endif
#endif
