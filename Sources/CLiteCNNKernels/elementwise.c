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

// MARK: Channel gather (NHWC)

/// How a gather map is copied: a few contiguous runs, the interleave of two runs, or any map.
enum { GATHER_RUNS = 0, GATHER_ZIP = 1, GATHER_ANY = 2, GATHER_MAX_RUNS = 64 };

/// Splits `map` into contiguous runs (`start[r]` = first k, `length[r]`) when there are at most `GATHER_MAX_RUNS`
/// of them and they average at least 8 channels (or the map is tiny); otherwise classifies it as a zip or any map.
static int gather_kind(const int32_t *map, int64_t count, int64_t *start, int64_t *length, int64_t *runs) {
    int64_t r = 0;
    for (int64_t k = 0; k < count; k++) {
        if (k == 0 || map[k] != map[k - 1] + 1) {
            if (r == GATHER_MAX_RUNS) { r = GATHER_MAX_RUNS + 1; break; }
            start[r] = k;
            length[r] = 0;
            r++;
        }
        length[r - 1]++;
    }
    *runs = r;
    if (r <= GATHER_MAX_RUNS && (r * 8 <= count || count < 4)) return GATHER_RUNS;
    int zip = count >= 4;
    for (int64_t k = 2; k < count && zip; k++) zip = map[k] == map[k - 2] + 1;
    return zip ? GATHER_ZIP : GATHER_ANY;
}

LCNN_INLINE void gather_runs(const float *s, float *d, const int32_t *map, const int64_t *start, const int64_t *length,
                             int64_t runs) {
    for (int64_t r = 0; r < runs; r++) memcpy(d + start[r], s + map[start[r]], (size_t)length[r] * sizeof(float));
}

static void gather_scalar(const float *src, int64_t srcStride, float *dst, int64_t dstStride, int64_t pixels,
                          const int32_t *map, int64_t count) {
    int64_t start[GATHER_MAX_RUNS], length[GATHER_MAX_RUNS], runs;
    int kind = gather_kind(map, count, start, length, &runs);
    for (int64_t p = 0; p < pixels; p++) {
        const float *s = src + p * srcStride;
        float *d = dst + p * dstStride;
        if (kind == GATHER_RUNS) gather_runs(s, d, map, start, length, runs);
        else for (int64_t k = 0; k < count; k++) d[k] = s[map[k]];
    }
}

#if LCNN_X86
LCNN_TARGET_AVX2 static void gather_avx2(const float *src, int64_t srcStride, float *dst, int64_t dstStride,
                                         int64_t pixels, const int32_t *map, int64_t count) {
    int64_t start[GATHER_MAX_RUNS], length[GATHER_MAX_RUNS], runs;
    int kind = gather_kind(map, count, start, length, &runs);
    if (kind == GATHER_RUNS) {
        for (int64_t p = 0; p < pixels; p++) gather_runs(src + p * srcStride, dst + p * dstStride, map, start, length, runs);
        return;
    }
    if (kind == GATHER_ZIP) {
        const int64_t a = map[0], b = map[1], pairs = count / 2;
        for (int64_t p = 0; p < pixels; p++) {
            const float *s = src + p * srcStride;
            float *d = dst + p * dstStride;
            int64_t j = 0;
            for (; j + 8 <= pairs; j += 8) {
                __m256 va = _mm256_loadu_ps(s + a + j), vb = _mm256_loadu_ps(s + b + j);
                __m256 lo = _mm256_unpacklo_ps(va, vb), hi = _mm256_unpackhi_ps(va, vb);
                _mm256_storeu_ps(d + 2 * j, _mm256_permute2f128_ps(lo, hi, 0x20));
                _mm256_storeu_ps(d + 2 * j + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
            }
            for (int64_t k = 2 * j; k < count; k++) d[k] = s[map[k]];
        }
        return;
    }
    for (int64_t p = 0; p < pixels; p++) {
        const float *s = src + p * srcStride;
        float *d = dst + p * dstStride;
        int64_t k = 0;
        for (; k + 8 <= count; k += 8)
            _mm256_storeu_ps(d + k, _mm256_i32gather_ps(s, _mm256_loadu_si256((const __m256i *)(map + k)), 4));
        for (; k < count; k++) d[k] = s[map[k]];
    }
}
#endif

void lcnn_gather_channels_nhwc(const float *src, int64_t srcStride, float *dst, int64_t dstStride, int64_t pixels,
                               const int32_t *map, int64_t count) {
#if LCNN_X86
    if (lcnn_isa_level() >= 1) { gather_avx2(src, srcStride, dst, dstStride, pixels, map, count); return; }
#endif
    gather_scalar(src, srcStride, dst, dstStride, pixels, map, count);
}

// MARK: Layout transpose (NCHW ↔ NHWC)

/// Blocked scalar transpose of rows `[i0, i1)` × columns `[j0, j1)`: 32×32 blocks so both sides stay in L1.
static void transpose_scalar(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t i0, int64_t i1,
                             int64_t j0, int64_t j1) {
    for (int64_t ib = i0; ib < i1; ib += 32) {
        int64_t ie = ib + 32 < i1 ? ib + 32 : i1;
        for (int64_t jb = j0; jb < j1; jb += 32) {
            int64_t je = jb + 32 < j1 ? jb + 32 : j1;
            for (int64_t j = jb; j < je; j++)
                for (int64_t i = ib; i < ie; i++) dst[j * ldd + i] = src[i * lds + j];
        }
    }
}

#if LCNN_X86
/// 8×8 tiles transposed in registers (unpack, shuffle, 128-bit permute); the edges that do not fill a tile go
/// through the scalar blocks.
LCNN_TARGET_AVX2 static void transpose_avx2(const float *src, int64_t rows, int64_t cols, int64_t lds, float *dst,
                                            int64_t ldd) {
    const int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (int64_t ib = 0; ib < r8; ib += 64) {
        int64_t ie = ib + 64 < r8 ? ib + 64 : r8;
        for (int64_t jb = 0; jb < c8; jb += 64) {
            int64_t je = jb + 64 < c8 ? jb + 64 : c8;
            for (int64_t i = ib; i < ie; i += 8)
                for (int64_t j = jb; j < je; j += 8) {
                    const float *s = src + i * lds + j;
                    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds), r2 = _mm256_loadu_ps(s + 2 * lds),
                           r3 = _mm256_loadu_ps(s + 3 * lds), r4 = _mm256_loadu_ps(s + 4 * lds),
                           r5 = _mm256_loadu_ps(s + 5 * lds), r6 = _mm256_loadu_ps(s + 6 * lds),
                           r7 = _mm256_loadu_ps(s + 7 * lds);
                    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                    float *d = dst + j * ldd + i;
                    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
                    _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
                    _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
                    _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
                    _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
                    _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
                    _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
                    _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
                }
        }
    }
    transpose_scalar(src, lds, dst, ldd, 0, r8, c8, cols);
    transpose_scalar(src, lds, dst, ldd, r8, rows, 0, cols);
}
#endif

#if LCNN_X86
/// 2–7 rows (an image's color planes) interleaved into contiguous `[cols][rows]` (`ldd == rows`): per 16 columns the
/// rows' vectors are merged by a chain of two-source permutes into the `rows` output vectors. Output vector `k` holds
/// the flat positions `16k ..< 16k + 16`, position `f` being column `f / rows`, row `f % rows`; the first permute takes
/// rows 0 and 1, each further one keeps the lanes it has and brings in row `m`'s. The 8×8 tiles of `transpose_avx2`
/// need 8 rows; a scalar loop spent 160 µs on MobileNet's 3 × 224² input, a fifth of its stem's time.
LCNN_TARGET_AVX512 LCNN_INLINE void interleave_rows_tile(const int R, const float *src, int64_t cols, int64_t lds,
                                                          float *dst) {
    int32_t index[7][7][16];  // [output vector k][stage: 0 = rows 0 and 1, m − 1 = row m][lane]
    for (int k = 0; k < R; k++)
        for (int l = 0; l < 16; l++) {
            int32_t f = 16 * k + l, column = f / R, row = f % R;
            index[k][0][l] = row == 1 ? 16 + column : column;
            for (int m = 2; m < R; m++) index[k][m - 1][l] = row == m ? 16 + column : l;
        }
    __m512i perm[7][7];
    for (int k = 0; k < R; k++)
        for (int m = 0; m < R - 1; m++) perm[k][m] = _mm512_loadu_si512(index[k][m]);
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
        __m512 v[7];
        for (int i = 0; i < R; i++) v[i] = _mm512_loadu_ps(src + i * lds + j);
        float *d = dst + j * R;
        for (int k = 0; k < R; k++) {
            __m512 t = _mm512_permutex2var_ps(v[0], perm[k][0], v[1]);
            for (int m = 2; m < R; m++) t = _mm512_permutex2var_ps(t, perm[k][m - 1], v[m]);
            _mm512_storeu_ps(d + 16 * k, t);
        }
    }
    for (; j < cols; j++)
        for (int i = 0; i < R; i++) dst[j * R + i] = src[i * lds + j];
}

LCNN_TARGET_AVX512 static void interleave_rows_avx512(const float *src, int64_t rows, int64_t cols, int64_t lds,
                                                      float *dst) {
    switch (rows) {
    case 2: interleave_rows_tile(2, src, cols, lds, dst); break;
    case 3: interleave_rows_tile(3, src, cols, lds, dst); break;
    case 4: interleave_rows_tile(4, src, cols, lds, dst); break;
    case 5: interleave_rows_tile(5, src, cols, lds, dst); break;
    case 6: interleave_rows_tile(6, src, cols, lds, dst); break;
    default: interleave_rows_tile(7, src, cols, lds, dst); break;
    }
}
#endif

void lcnn_transpose_2d(const float *src, int64_t rows, int64_t cols, int64_t lds, float *dst, int64_t ldd) {
    if (rows <= 0 || cols <= 0) return;
#if LCNN_X86
    if (lcnn_isa_level() >= 1 && rows >= 8 && cols >= 8) { transpose_avx2(src, rows, cols, lds, dst, ldd); return; }
    if (lcnn_isa_level() >= 2 && rows >= 2 && ldd == rows && cols >= 16) {
        interleave_rows_avx512(src, rows, cols, lds, dst);
        return;
    }
#endif
    transpose_scalar(src, lds, dst, ldd, 0, rows, 0, cols);
}
