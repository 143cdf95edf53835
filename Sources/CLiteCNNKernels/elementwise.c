// Elementwise kernels of the runtime: an activation over a buffer, and the per-channel scaling of squeeze-and-excitation.
#include "internal.h"

LCNN_INLINE void activation_scalar(const float *src, float *dst, int64_t i, int64_t n, int act) {
    for (; i < n; i++) dst[i] = lcnn_activate(src[i], act);
}

LCNN_INLINE void scale_scalar(const float *x, const float *s, float *o, int64_t c0, int64_t channels) {
    for (int64_t c = c0; c < channels; c++) o[c] = x[c] * s[c];
}

LCNN_INLINE void add_activation_scalar(const float *a, const float *b, float *dst, int64_t i, int64_t n, int act) {
    for (; i < n; i++) dst[i] = lcnn_activate(a[i] + b[i], act);
}

#if LCNN_X86
LCNN_TARGET_AVX2 static void add_activation_avx2(const float *a, const float *b, float *dst, int64_t n, int act) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, lcnn_avx2_activate(_mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)), act));
    add_activation_scalar(a, b, dst, i, n, act);
}

LCNN_TARGET_AVX512 static void add_activation_avx512(const float *a, const float *b, float *dst, int64_t n, int act) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, lcnn_avx512_activate(_mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)), act));
    add_activation_scalar(a, b, dst, i, n, act);
}

LCNN_TARGET_AVX2 static void activation_avx2(const float *src, float *dst, int64_t n, int act) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, lcnn_avx2_activate(_mm256_loadu_ps(src + i), act));
    activation_scalar(src, dst, i, n, act);
}

LCNN_TARGET_AVX512 static void activation_avx512(const float *src, float *dst, int64_t n, int act) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, lcnn_avx512_activate(_mm512_loadu_ps(src + i), act));
    activation_scalar(src, dst, i, n, act);
}

LCNN_TARGET_AVX2 static void scale_avx2(const float *x, const float *s, float *o, int64_t positions, int64_t channels) {
    for (int64_t p = 0; p < positions; p++) {
        const float *xp = x + p * channels;
        float *op = o + p * channels;
        int64_t c = 0;
        for (; c + 8 <= channels; c += 8) _mm256_storeu_ps(op + c, _mm256_mul_ps(_mm256_loadu_ps(xp + c), _mm256_loadu_ps(s + c)));
        scale_scalar(xp, s, op, c, channels);
    }
}

LCNN_TARGET_AVX512 static void scale_avx512(const float *x, const float *s, float *o, int64_t positions, int64_t channels) {
    for (int64_t p = 0; p < positions; p++) {
        const float *xp = x + p * channels;
        float *op = o + p * channels;
        int64_t c = 0;
        for (; c + 16 <= channels; c += 16) _mm512_storeu_ps(op + c, _mm512_mul_ps(_mm512_loadu_ps(xp + c), _mm512_loadu_ps(s + c)));
        scale_scalar(xp, s, op, c, channels);
    }
}
#endif

void lcnn_activation(const float *src, float *dst, int64_t count, int act) {
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) { activation_avx512(src, dst, count, act); return; }
    if (level >= 1) { activation_avx2(src, dst, count, act); return; }
#endif
    activation_scalar(src, dst, 0, count, act);
}

void lcnn_add_activation(const float *a, const float *b, float *dst, int64_t count, int act) {
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) { add_activation_avx512(a, b, dst, count, act); return; }
    if (level >= 1) { add_activation_avx2(a, b, dst, count, act); return; }
#endif
    add_activation_scalar(a, b, dst, 0, count, act);
}

void lcnn_scale_channels(const float *x, const float *scale, float *out, int64_t positions, int64_t channels) {
#if LCNN_X86
    int level = lcnn_isa_level();
    if (level >= 2) { scale_avx512(x, scale, out, positions, channels); return; }
    if (level >= 1) { scale_avx2(x, scale, out, positions, channels); return; }
#endif
    for (int64_t p = 0; p < positions; p++) scale_scalar(x + p * channels, scale, out + p * channels, 0, channels);
}
