// C helpers around libpng, libjpeg(-turbo) and zlib for LiteCNNData's image and gzip readers.
//
// libpng's and libjpeg's error handlers leave a failing decode with longjmp, which Swift cannot use safely, so the
// setjmp/longjmp pairs live here, in C: every function returns a status and writes a readable message instead of
// calling exit() or printing to stderr.
#ifndef CIMAGEDECODE_H
#define CIMAGEDECODE_H

#include <stddef.h>
#include <stdint.h>

/// Capacity of the `message` buffers the functions below write errors into (NUL-terminated).
#define LITECNN_MESSAGE_CAPACITY 256

/// A decoded image: `height` rows of `width` pixels of `channels` (1 = gray, 3 = RGB; alpha is dropped) samples,
/// interleaved (HWC). Samples are `uint8_t` when `bytesPerSample` is 1 and host-endian `uint16_t` when it is 2 (16-bit
/// PNG). `pixels` is allocated with malloc; release it with `litecnn_image_free`.
typedef struct LiteCNNImage {
    int32_t width;
    int32_t height;
    int32_t channels;
    int32_t bytesPerSample;
    void *pixels;
} LiteCNNImage;

/// Status codes.
enum {
    LITECNN_OK = 0,
    LITECNN_ERROR = -1,
    LITECNN_TOO_LARGE = -2,
};

/// Reads only the header of a PNG or JPEG: fills width, height and channels (1 or 3, the count `decode` would give);
/// `pixels` stays NULL.
int litecnn_probe_image(const uint8_t *bytes, size_t length, LiteCNNImage *info, char *message);

/// Decodes a PNG (any color type and bit depth; palette expanded to RGB, 1/2/4-bit gray expanded to 8 bits, 16-bit
/// kept, alpha dropped, interlaced images handled). Images with more than `maxPixels` pixels are refused with
/// LITECNN_TOO_LARGE before any pixel memory is allocated.
int litecnn_decode_png(const uint8_t *bytes, size_t length, uint64_t maxPixels, LiteCNNImage *image, char *message);

/// Decodes a baseline or progressive JPEG to gray (1 component) or RGB (YCbCr/RGB, 3 components); CMYK/YCCK are refused.
/// A file that ends before the image data does is an error (libjpeg would fill the rest with gray).
int litecnn_decode_jpeg(const uint8_t *bytes, size_t length, uint64_t maxPixels, LiteCNNImage *image, char *message);

/// Frees the pixels of an image and sets the pointer to NULL.
void litecnn_image_free(LiteCNNImage *image);

/// Encodes a PNG. `colorType` is libpng's (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA), `bitDepth` 8 or 16
/// (16-bit samples are host-endian `uint16_t`), palette images take `palette` (`paletteCount` RGB triples) and
/// optionally `alphas` (`alphaCount` tRNS entries). On success `*output` is a malloc'd buffer of `*outputLength` bytes
/// (release with `litecnn_buffer_free`).
int litecnn_encode_png(const void *pixels, int32_t width, int32_t height, int32_t colorType, int32_t bitDepth,
                       const uint8_t *palette, int32_t paletteCount, const uint8_t *alphas, int32_t alphaCount,
                       int32_t interlaced, uint8_t **output, size_t *outputLength, char *message);

/// Encodes 8-bit gray (`channels` 1), RGB (3) or CMYK (4, which the decoder refuses; for tests) HWC pixels as a JFIF JPEG of `quality` 1…100, progressive when
/// `progressive` is nonzero. `*output` is malloc'd (release with `litecnn_buffer_free`).
int litecnn_encode_jpeg(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels, int32_t quality,
                        int32_t progressive, uint8_t **output, size_t *outputLength, char *message);

/// Frees a buffer returned by an encoder.
void litecnn_buffer_free(void *buffer);

/// Status codes of `litecnn_inflate`.
enum {
    LITECNN_INFLATE_COMPLETE = 0,   ///< the stream ended and its output fit in the capacity
    LITECNN_INFLATE_MORE = 1,       ///< the output is full and the stream holds more data
    LITECNN_INFLATE_TRUNCATED = -3, ///< the input ended before the stream did
    LITECNN_INFLATE_CORRUPT = -4,   ///< invalid compressed data (message says why)
};

/// Decompresses gzip or zlib data (detected from the header; concatenated gzip members are decoded one after another)
/// into `output`, writing at most `capacity` bytes; `*produced` receives the bytes written. Never allocates more than
/// zlib's fixed ~40 KB state, so a lying length field cannot drive a large allocation.
int litecnn_inflate(const uint8_t *input, size_t inputLength, uint8_t *output, size_t capacity, size_t *produced,
                    char *message);

/// Compresses `input` as one gzip member at zlib's `level` (0…9). `*output` is malloc'd (release with
/// `litecnn_buffer_free`). Used to write `.gz` files (tests make MNIST-style `.gz` files with it).
int litecnn_gzip_compress(const uint8_t *input, size_t inputLength, int32_t level, uint8_t **output,
                          size_t *outputLength, char *message);

#endif
