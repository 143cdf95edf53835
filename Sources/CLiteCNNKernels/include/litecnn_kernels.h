// LiteCNN's hot kernels in C.
//
// Each kernel has a portable body and, on x86-64, AVX-512 / AVX2+FMA bodies compiled with per-function
// `__attribute__((target(...)))`. The choice is made once at run time from CPUID, so no build flag
// (`-march=native`, `unsafeFlags`) is needed for speed. All matrices are row-major float32.
//
// Every function here is single-threaded; the Swift side (`Kernels`) splits work over `WorkerPool.shared`
// by calling them on disjoint ranges. Scratch memory (packing buffers, im2col tiles) is thread-local and reused.
#ifndef LITECNN_KERNELS_H
#define LITECNN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A pause hint for spin-wait loops (PAUSE on x86, YIELD on ARM).
void lcnn_cpu_relax(void);

/// The processor worker `index` (1, 2, …) of a pool created on the calling thread should be bound to: the `index`-th
/// processor of the process's affinity set other than the one the caller runs on; -1 when there are not that many
/// (or not on Linux).
int lcnn_worker_processor(int index);

/// The processor the calling thread runs on (Linux), or -1.
int lcnn_current_processor(void);

/// Binds the calling thread to `processor` (Linux; elsewhere a no-op). Returns 0, or -1 when that fails.
int lcnn_pin_current_thread(int processor);

/// The instruction set the kernels dispatched to: 0 portable, 1 AVX2+FMA, 2 AVX-512.
int lcnn_isa_level(void);

/// Forces a lower instruction-set level (for testing the fallbacks); returns the level in force.
int lcnn_set_isa_level(int level);

/// Memory for long-lived kernel buffers (packed weights, activation arenas), 64-byte aligned; free it with
/// `lcnn_aligned_free` only. Blocks of 2 MiB and more are mapped from the system directly (2 MiB-aligned, advised for
/// transparent huge pages) and unmapped when freed, so a freed arena or weight panel leaves the resident set at once
/// instead of staying in malloc's heap. Returns NULL when the memory is not available.
void *lcnn_aligned_alloc(size_t bytes);

/// `lcnn_aligned_alloc`, advised for transparent huge pages only when `hugePages` is nonzero (large blocks are still
/// mapped 2 MiB-aligned and unmapped when freed).
void *lcnn_aligned_alloc_pages(size_t bytes, int hugePages);

/// Frees a block of `lcnn_aligned_alloc` (NULL is ignored).
void lcnn_aligned_free(void *pointer);

/// The calling thread's buffer for the intermediate rows of a band of fused layers: at least `count` floats, kept and
/// reused by the thread's later calls (it grows when asked for more), used by no kernel.
float *lcnn_band_scratch(int64_t count);

/// Asks the kernel to back `[pointer, pointer + bytes)` with transparent huge pages (Linux `madvise(MADV_HUGEPAGE)`;
/// a no-op elsewhere). Returns 0 when the advice was taken. Only whole 2 MiB pages inside the range are affected.
int lcnn_advise_huge_pages(void *pointer, size_t bytes);

// MARK: - GEMM

/// Activation fused into a kernel's epilogue.
enum {
    LCNN_ACT_NONE = 0,
    LCNN_ACT_RELU = 1,
    LCNN_ACT_RELU6 = 2,
    /// `x·min(max(x + 3, 0), 6)/6`
    LCNN_ACT_HARDSWISH = 3,
    /// `1/(1 + e^−x)`
    LCNN_ACT_SIGMOID = 4,
    /// `min(max(x/6 + 1/2, 0), 1)` (PyTorch's Hardsigmoid; ONNX HardSigmoid with alpha = 1/6, beta = 0.5)
    LCNN_ACT_HARDSIGMOID = 5,
    /// `x/(1 + e^−x)` (SiLU, Swish)
    LCNN_ACT_SILU = 6,
};

/// Single-threaded `C = act(alpha·op(A)·op(B) + beta·C + bias)`; op(A) is m×k, op(B) k×n, `bias` (length n, or NULL)
/// is added per column. With `beta == 0` C is not read. `act` is one of `LCNN_ACT_*`.
void lcnn_sgemm(int transA, int transB, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb,
                float beta, float *c, int64_t ldc, const float *bias, int act);

/// Floats needed by `lcnn_pack_b` for a k×n right-hand matrix (independent of the instruction set).
int64_t lcnn_packed_b_count(int64_t k, int64_t n);

/// Packs op(B) (k×n) once into the layout the micro-kernels read, so repeated products skip the packing.
void lcnn_pack_b(int transB, int64_t k, int64_t n, const float *b, int64_t ldb, float *packed);

/// Packs columns `n0 ..< n0 + nc` of op(B) (k×n) into their place in `lcnn_pack_b`'s layout of the whole matrix, so a
/// large operand can be packed from a small reordered slice at a time. `b` points at column `n0` (for `transB`, at
/// row `n0` of the stored `[n, ldb]` matrix); `n0` must be a multiple of 16.
void lcnn_pack_b_columns(int transB, int64_t k, int64_t n, int64_t n0, int64_t nc, const float *b, int64_t ldb,
                         float *packed);

/// `lcnn_sgemm` with op(B) given pre-packed by `lcnn_pack_b(…, k, n, …)`.
void lcnn_sgemm_packed(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                       const float *packedB, float beta, float *c, int64_t ldc, const float *bias, int act);

/// `lcnn_sgemm_packed` with a residual: `C = act(alpha·op(A)·B + beta·C + bias + R)` where `R[i·ldr + j]` (m×n, or
/// NULL) must not alias C.
void lcnn_sgemm_packed_residual(int transA, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                                const float *packedB, float beta, float *c, int64_t ldc, const float *bias,
                                const float *residual, int64_t ldr, int act);

// MARK: - Convolution (NHWC activations)

/// The shape of one 2-D convolution (see ConvGeometry.swift). `oh`, `ow` are the output height and width.
typedef struct {
    int64_t batch, ih, iw, ic, oc, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, groups;
} lcnn_conv_geom;

/// Writes rows `[pix0, pix0 + npix)` of the im2col matrix of channel slice `[c0, c0 + cpg)` of `input`.
/// Output pixels are numbered `(n·oh + oy)·ow + ox`; each row holds `kh·kw·cpg` values in (ky, kx, c) order,
/// zeros where the window leaves the image.
void lcnn_im2col_nhwc(const lcnn_conv_geom *g, const float *input, int64_t c0, int64_t cpg,
                      int64_t pix0, int64_t npix, float *cols);

/// The adjoint of `lcnn_im2col_nhwc`: adds the rows back into `gradInput` (+=).
void lcnn_col2im_add_nhwc(const lcnn_conv_geom *g, const float *cols, int64_t c0, int64_t cpg,
                          int64_t pix0, int64_t npix, float *gradInput);

/// Forward convolution of output pixels `[pix0, pix0 + npix)`, all groups. `packedWeight` holds per group
/// `lcnn_pack_b(1, kh·kw·icg, ocg, W_g)` of the weights reordered to `[oc, kh, kw, icg]`, `groupStride` floats apart.
void lcnn_conv2d_forward_tile(const lcnn_conv_geom *g, const float *input, const float *packedWeight,
                              int64_t groupStride, const float *bias, int act, float *output,
                              int64_t pix0, int64_t npix);

/// `lcnn_conv2d_forward_tile` with a residual added before the activation: `residual` (NULL or NHWC shaped like
/// the output, not aliasing it) is read at the same pixels and channels as the output.
void lcnn_conv2d_forward_tile_residual(const lcnn_conv_geom *g, const float *input, const float *packedWeight,
                                       int64_t groupStride, const float *bias, const float *residual, int act,
                                       float *output, int64_t pix0, int64_t npix);

// MARK: - Winograd F(4×4, 3×3) (dense 3×3, stride 1, dilation 1, groups 1; NHWC)

/// Floats of the packed transformed weights: 36 packed `[ic, oc]` GEMM operands, `lcnn_packed_b_count(ic, oc)` each.
int64_t lcnn_winograd_packed_count(int64_t ic, int64_t oc);

/// Transforms OIHW `[oc, ic, 3, 3]` weights (U = G·g·Gᵀ) and packs the 36 `[ic, oc]` matrices.
void lcnn_winograd_pack_weights(int64_t ic, int64_t oc, const float *weight, float *packed);

/// Output tiles `[tile0, tile0 + ntiles)` of a Winograd convolution. Tiles are 4×4 output pixels numbered
/// `(n·tilesY + ty)·tilesX + tx` with `tilesY = ceil(oh/4)`, `tilesX = ceil(ow/4)`. `g` must be 3×3, stride 1,
/// dilation 1, one group (any padding). `output = act(conv + bias + residual)`; `bias`, `residual` may be NULL.
void lcnn_winograd_forward_tiles(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                                 const float *residual, int act, float *output, int64_t tile0, int64_t ntiles);

/// `lcnn_winograd_forward_tiles` restricted to output channels `[oc0, oc0 + noc)` (`oc0` a multiple of 16): lets
/// threads split a layer with few tiles by channels, each streaming only its share of the transformed weights.
void lcnn_winograd_forward_tiles_channels(const lcnn_conv_geom *g, const float *input, const float *packed,
                                          const float *bias, const float *residual, int act, float *output,
                                          int64_t tile0, int64_t ntiles, int64_t oc0, int64_t noc);

/// Backward-input of output pixels `[pix0, pix0 + npix)`: `packedWeight` holds per group
/// `lcnn_pack_b(0, ocg, kh·kw·icg, W_g)`. For a pointwise (1×1, stride 1, unpadded) geometry the matching input
/// pixels are overwritten; otherwise the contributions are added into `gradInput` (zero it first, and never run two
/// overlapping calls at once).
void lcnn_conv2d_backward_input_tile(const lcnn_conv_geom *g, const float *gradOutput, const float *packedWeight,
                                     int64_t groupStride, float *gradInput, int64_t pix0, int64_t npix);

/// Backward-weight of output pixels `[pix0, pix0 + npix)`: `accumulator[group][ocg][kh·kw·icg]` (taps-major
/// (ky, kx, c) order) += gradOutput_gᵀ · im2col(input_g).
void lcnn_conv2d_backward_weight_tile(const lcnn_conv_geom *g, const float *input, const float *gradOutput,
                                      float *accumulator, int64_t pix0, int64_t npix);

// MARK: - Depthwise convolution (channels == groups, NHWC, weights tap-major `[kh·kw][C]`)

/// Output rows `[row0, row1)` (rows numbered `n·oh + oy`) of a depthwise convolution with `g->ic == g->oc` channels.
void lcnn_depthwise_forward_rows(const lcnn_conv_geom *g, const float *input, const float *weightTaps,
                                 const float *bias, int act, float *output, int64_t row0, int64_t row1);

/// Input-gradient rows `[row0, row1)` (rows numbered `n·ih + iy`), overwritten.
void lcnn_depthwise_backward_input_rows(const lcnn_conv_geom *g, const float *gradOutput, const float *weightTaps,
                                        float *gradInput, int64_t row0, int64_t row1);

/// `gradWeightTaps[kh·kw][C] +=` the contribution of output rows `[row0, row1)`.
void lcnn_depthwise_backward_weight_rows(const lcnn_conv_geom *g, const float *input, const float *gradOutput,
                                         float *gradWeightTaps, int64_t row0, int64_t row1);

// MARK: - Pooling (NHWC, vectorized over channels; `g->ic` channels, `g->oh`/`g->ow` chosen by the caller)

/// Max pooling of output rows `[row0, row1)` (rows numbered `n·oh + oy`); windows clipped to the image.
void lcnn_maxpool_nhwc_rows(const lcnn_conv_geom *g, const float *input, float *output, int64_t row0, int64_t row1);

/// Average pooling of output rows `[row0, row1)`. The divisor counts the window's taps inside the image, or with
/// `countIncludePad` those inside the padded image `[−pt, paddedHeight − pt) × [−pl, paddedWidth − pl)`
/// (`paddedHeight = ih + pt + pb`), as PyTorch and ONNX do (ceil-mode overhang never counts).
void lcnn_avgpool_nhwc_rows(const lcnn_conv_geom *g, const float *input, float *output, int64_t row0, int64_t row1,
                            int64_t paddedHeight, int64_t paddedWidth, int countIncludePad);

/// Global average pooling: `[images, hw, channels]` → `[images, channels]`.
void lcnn_global_avgpool_nhwc(const float *input, int64_t images, int64_t hw, int64_t channels, float *output);

// MARK: - Direct convolution (one group, small K = kh·kw·ic: stems, 1×1 with few input channels)

/// Floats of the weights packed by `lcnn_conv2d_direct_pack`: `K · round8(oc)`.
int64_t lcnn_conv2d_direct_packed_count(const lcnn_conv_geom *g);

/// Packs OIHW weights (`groups == 1`) as `[K][round8(oc)]`, taps in (ky, kx, c) order, padding zeroed.
void lcnn_conv2d_direct_pack(const lcnn_conv_geom *g, const float *weight, float *packed);

/// `output = act(conv(input) + bias + residual)` for output rows `[row0, row1)` (rows numbered `n·oh + oy`), NHWC;
/// `bias` and `residual` (NHWC like the output, must not alias it) may be NULL.
void lcnn_conv2d_direct_rows(const lcnn_conv_geom *g, const float *input, const float *packed, const float *bias,
                             const float *residual, int act, float *output, int64_t row0, int64_t row1);

/// `lcnn_conv2d_direct_rows` writing output pixel `p` (numbered from the tensor's start) at `output + p·ldo`
/// (`ldo ≥ oc`): a channel slice of a wider NHWC tensor, such as a Concat's output. The other floats of each pixel are
/// untouched; `residual` stays contiguous (`oc` floats per pixel).
void lcnn_conv2d_direct_rows_strided(const lcnn_conv_geom *g, const float *input, const float *packed,
                                     const float *bias, const float *residual, int act, float *output, int64_t ldo,
                                     int64_t row0, int64_t row1);

// MARK: - Elementwise

/// `dst[i] = act(src[i])` for `i < count` with an `LCNN_ACT_*` activation (`dst` may be `src`).
void lcnn_activation(const float *src, float *dst, int64_t count, int act);

/// `dst[i] = act(a[i] + b[i])` for `i < count` (`dst` may be `a` or `b`): a residual connection and its activation.
void lcnn_add_activation(const float *a, const float *b, float *dst, int64_t count, int act);

/// Squeeze-and-excitation scaling of one image: `out[p·channels + c] = x[p·channels + c] · scale[c]` for
/// `p < positions` (NHWC rows; `out` may be `x`).
void lcnn_scale_channels(const float *x, const float *scale, float *out, int64_t positions, int64_t channels);

// MARK: - Strided outputs and channel gathers (zero-copy Concat, channel shuffle)

/// `lcnn_conv2d_forward_tile_residual` writing output pixel `p`'s `oc` channels at `output + p·ldo` (NHWC rows of
/// `ldo ≥ oc` floats: a channel slice of a wider NHWC tensor, e.g. a Concat's output at its channel offset). The
/// residual, if any, keeps rows of `oc` floats. Dense and grouped im2col/pointwise GEMM path only.
void lcnn_conv2d_forward_tile_ld(const lcnn_conv_geom *g, const float *input, const float *packedWeight,
                                 int64_t groupStride, const float *bias, const float *residual, int act,
                                 float *output, int64_t ldo, int64_t pix0, int64_t npix);

/// Output channels `[col0, col0 + ncols)` of output pixels `[pix0, pix0 + npix)` of a single-group convolution, rows
/// of `ldo ≥ oc` floats; `col0` must be a multiple of 16 (a packed panel). A pointwise geometry (1×1, stride 1, no
/// padding) reads the input in place; any other gathers the tile's im2col patches first. Lets a product whose weights
/// outweigh its pixels (a classifier at batch 1, a 7×7 map) be split over threads by output channels.
void lcnn_conv2d_forward_pointwise_cols(const lcnn_conv_geom *g, const float *input, const float *packedWeight,
                                        const float *bias, const float *residual, int act, float *output,
                                        int64_t ldo, int64_t pix0, int64_t npix, int64_t col0, int64_t ncols);

/// Matrix transpose: `dst[j·ldd + i] = src[i·lds + j]` for `i < rows`, `j < cols` (`dst` must not overlap `src`).
/// One image's NCHW → NHWC is `rows = C`, `cols = H·W`, `lds = H·W`, `ldd = C` (NHWC → NCHW the reverse; `lds` may
/// exceed C for a channel view). 8×8 register tiles on AVX2, 32×32 scalar blocks otherwise and at the edges.
void lcnn_transpose_2d(const float *src, int64_t rows, int64_t cols, int64_t lds, float *dst, int64_t ldd);

/// NHWC channel gather: `dst[p·dstStride + k] = src[p·srcStride + map[k]]` for `p < pixels`, `k < count`
/// (`dst` must not overlap `src`). Contiguous runs of `map` are copied as blocks and the interleave of two runs
/// (`map = a, b, a+1, b+1, …`: a channel shuffle with two groups) with vector unpacks; other maps use gathers.
void lcnn_gather_channels_nhwc(const float *src, int64_t srcStride, float *dst, int64_t dstStride, int64_t pixels,
                               const int32_t *map, int64_t count);

#ifdef __cplusplus
}
#endif
#endif
