// Dense and grouped 2-D convolution on NHWC activations as GEMM.
//
// Output pixel p = (n·oh + oy)·ow + ox is row p of the product; the K = kh·kw·icg columns follow the NHWC patch
// order (ky, kx, c), so each (ky, kx) tap of a patch is one contiguous channel run of the input. A pointwise
// geometry (1×1, stride 1, no padding) reads the input in place; everything else goes through an im2col tile that
// the caller bounds by choosing `npix`.
#include "internal.h"

static int is_pointwise(const lcnn_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 && g->oh == g->ih &&
           g->ow == g->iw;
}

void lcnn_im2col_nhwc(const lcnn_conv_geom *g, const float *input, int64_t c0, int64_t cpg,
                      int64_t pix0, int64_t npix, float *cols) {
    const int64_t K = g->kh * g->kw * cpg;
    for (int64_t r = 0; r < npix; r++) {
        int64_t pix = pix0 + r;
        int64_t ox = pix % g->ow, t = pix / g->ow;
        int64_t oy = t % g->oh, n = t / g->oh;
        float *dst = cols + r * K;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            int64_t iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) {
                memset(dst, 0, (size_t)(g->kw * cpg) * sizeof(float));
                dst += g->kw * cpg;
                continue;
            }
            const float *row = input + (n * g->ih + iy) * g->iw * g->ic + c0;
            for (int64_t kx = 0; kx < g->kw; kx++, dst += cpg) {
                int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                if (ix < 0 || ix >= g->iw) memset(dst, 0, (size_t)cpg * sizeof(float));
                else memcpy(dst, row + ix * g->ic, (size_t)cpg * sizeof(float));
            }
        }
    }
}

void lcnn_col2im_add_nhwc(const lcnn_conv_geom *g, const float *cols, int64_t c0, int64_t cpg,
                          int64_t pix0, int64_t npix, float *gradInput) {
    const int64_t K = g->kh * g->kw * cpg;
    for (int64_t r = 0; r < npix; r++) {
        int64_t pix = pix0 + r;
        int64_t ox = pix % g->ow, t = pix / g->ow;
        int64_t oy = t % g->oh, n = t / g->oh;
        const float *src = cols + r * K;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            int64_t iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) { src += g->kw * cpg; continue; }
            float *row = gradInput + (n * g->ih + iy) * g->iw * g->ic + c0;
            for (int64_t kx = 0; kx < g->kw; kx++, src += cpg) {
                int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                if (ix < 0 || ix >= g->iw) continue;
                float *dst = row + ix * g->ic;
                for (int64_t c = 0; c < cpg; c++) dst[c] += src[c];
            }
        }
    }
}

void lcnn_conv2d_forward_tile(const lcnn_conv_geom *g, const float *input, const float *packedWeight,
                              int64_t groupStride, const float *bias, int act, float *output,
                              int64_t pix0, int64_t npix) {
    lcnn_conv2d_forward_tile_residual(g, input, packedWeight, groupStride, bias, NULL, act, output, pix0, npix);
}

void lcnn_conv2d_forward_tile_residual(const lcnn_conv_geom *g, const float *input, const float *packedWeight,
                                       int64_t groupStride, const float *bias, const float *residual, int act,
                                       float *output, int64_t pix0, int64_t npix) {
    lcnn_conv2d_forward_tile_ld(g, input, packedWeight, groupStride, bias, residual, act, output, g->oc, pix0, npix);
}

void lcnn_conv2d_forward_tile_ld(const lcnn_conv_geom *g, const float *input, const float *packedWeight,
                                 int64_t groupStride, const float *bias, const float *residual, int act,
                                 float *output, int64_t ldo, int64_t pix0, int64_t npix) {
    const int64_t icg = g->ic / g->groups, ocg = g->oc / g->groups, K = g->kh * g->kw * icg;
    const int pointwise = is_pointwise(g);
    float *cols = pointwise ? NULL : lcnn_scratch(LCNN_SCRATCH_COLS, npix * K);
    for (int64_t grp = 0; grp < g->groups; grp++) {
        const float *a;
        int64_t lda;
        if (pointwise) {
            a = input + pix0 * g->ic + grp * icg;
            lda = g->ic;
        } else {
            lcnn_im2col_nhwc(g, input, grp * icg, icg, pix0, npix, cols);
            a = cols;
            lda = K;
        }
        lcnn_gemm_core_ex(0, npix, ocg, K, 1, a, lda, 0, NULL, 0, packedWeight + grp * groupStride, 0,
                          output + pix0 * ldo + grp * ocg, ldo, bias ? bias + grp * ocg : NULL,
                          residual ? residual + pix0 * g->oc + grp * ocg : NULL, g->oc, act);
    }
}

void lcnn_conv2d_forward_pointwise_cols(const lcnn_conv_geom *g, const float *input, const float *packedWeight,
                                        const float *bias, const float *residual, int act, float *output,
                                        int64_t ldo, int64_t pix0, int64_t npix, int64_t col0, int64_t ncols) {
    if (npix <= 0 || ncols <= 0) return;
    const float *a = input + pix0 * g->ic;
    int64_t K = g->ic;
    if (!is_pointwise(g)) {
        // Any other single-group geometry: this tile's patches, then the same column slice of the product.
        K = g->kh * g->kw * g->ic;
        float *cols = lcnn_scratch(LCNN_SCRATCH_COLS, npix * K);
        lcnn_im2col_nhwc(g, input, 0, g->ic, pix0, npix, cols);
        a = cols;
    }
    lcnn_gemm_core_sub(0, npix, ncols, K, 1, a, K, 0, NULL, 0, packedWeight,
                       (g->oc + 15) / 16 * 16, col0 / 16, 0, output + pix0 * ldo + col0, ldo,
                       bias ? bias + col0 : NULL, residual ? residual + pix0 * g->oc + col0 : NULL, g->oc, act);
}

void lcnn_conv2d_backward_input_tile(const lcnn_conv_geom *g, const float *gradOutput, const float *packedWeight,
                                     int64_t groupStride, float *gradInput, int64_t pix0, int64_t npix) {
    const int64_t icg = g->ic / g->groups, ocg = g->oc / g->groups, K = g->kh * g->kw * icg;
    const int pointwise = is_pointwise(g);
    float *cols = pointwise ? NULL : lcnn_scratch(LCNN_SCRATCH_COLS, npix * K);
    for (int64_t grp = 0; grp < g->groups; grp++) {
        const float *a = gradOutput + pix0 * g->oc + grp * ocg;
        if (pointwise) {
            lcnn_gemm_core(0, npix, icg, ocg, 1, a, g->oc, 0, NULL, 0, packedWeight + grp * groupStride, 0,
                           gradInput + pix0 * g->ic + grp * icg, g->ic, NULL, LCNN_ACT_NONE);
        } else {
            lcnn_gemm_core(0, npix, K, ocg, 1, a, g->oc, 0, NULL, 0, packedWeight + grp * groupStride, 0,
                           cols, K, NULL, LCNN_ACT_NONE);
            lcnn_col2im_add_nhwc(g, cols, grp * icg, icg, pix0, npix, gradInput);
        }
    }
}

void lcnn_conv2d_backward_weight_tile(const lcnn_conv_geom *g, const float *input, const float *gradOutput,
                                      float *accumulator, int64_t pix0, int64_t npix) {
    const int64_t icg = g->ic / g->groups, ocg = g->oc / g->groups, K = g->kh * g->kw * icg;
    const int pointwise = is_pointwise(g);
    float *cols = pointwise ? NULL : lcnn_scratch(LCNN_SCRATCH_COLS, npix * K);
    for (int64_t grp = 0; grp < g->groups; grp++) {
        const float *b;
        int64_t ldb;
        if (pointwise) {
            b = input + pix0 * g->ic + grp * icg;
            ldb = g->ic;
        } else {
            lcnn_im2col_nhwc(g, input, grp * icg, icg, pix0, npix, cols);
            b = cols;
            ldb = K;
        }
        lcnn_gemm_core(1, ocg, K, npix, 1, gradOutput + pix0 * g->oc + grp * ocg, g->oc, 0, b, ldb, NULL, 1,
                       accumulator + grp * ocg * K, K, NULL, LCNN_ACT_NONE);
    }
}
