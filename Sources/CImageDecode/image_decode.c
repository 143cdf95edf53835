// PNG and JPEG decoding and encoding through libpng and libjpeg(-turbo), and gzip inflation through zlib, with the
// libraries' longjmp-based error handling kept inside C (see include/CImageDecode.h).
#include "CImageDecode.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>
#include <zlib.h>

static void set_message(char *message, const char *format, ...) {
    if (!message) return;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, LITECNN_MESSAGE_CAPACITY, format, arguments);
    va_end(arguments);
}

void litecnn_image_free(LiteCNNImage *image) {
    if (!image) return;
    free(image->pixels);
    image->pixels = NULL;
}

void litecnn_buffer_free(void *buffer) { free(buffer); }

// MARK: - PNG

typedef struct {
    jmp_buf jump;
    char *message;
} PNGErrorContext;

typedef struct {
    const uint8_t *data;
    size_t length;
    size_t position;
} PNGMemoryReader;

static void png_error_handler(png_structp png, png_const_charp text) {
    PNGErrorContext *context = (PNGErrorContext *)png_get_error_ptr(png);
    set_message(context->message, "%s", text);
    longjmp(context->jump, 1);
}

static void png_warning_handler(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void png_read_from_memory(png_structp png, png_bytep out, size_t count) {
    PNGMemoryReader *reader = (PNGMemoryReader *)png_get_io_ptr(png);
    if (reader->length - reader->position < count) {
        png_error(png, "file ends early (truncated PNG)");
    }
    memcpy(out, reader->data + reader->position, count);
    reader->position += count;
}

static int is_png(const uint8_t *bytes, size_t length) {
    return length >= 8 && png_sig_cmp((png_const_bytep)bytes, 0, 8) == 0;
}

static int is_jpeg(const uint8_t *bytes, size_t length) {
    return length >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
}

int litecnn_decode_png(const uint8_t *bytes, size_t length, uint64_t maxPixels, LiteCNNImage *image, char *message) {
    memset(image, 0, sizeof *image);
    if (!is_png(bytes, length)) {
        set_message(message, "not a PNG file (bad signature)");
        return LITECNN_ERROR;
    }
    PNGErrorContext context;
    context.message = message;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_error_handler, png_warning_handler);
    if (!png) {
        set_message(message, "out of memory");
        return LITECNN_ERROR;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_message(message, "out of memory");
        return LITECNN_ERROR;
    }
    uint8_t *volatile raw = NULL;
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int status = LITECNN_ERROR;
    if (setjmp(context.jump)) {
        free(raw);
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return status;
    }
    PNGMemoryReader reader = {bytes, length, 0};
    png_set_read_fn(png, &reader, png_read_from_memory);
    png_read_info(png, info);
    png_uint_32 width = 0, height = 0;
    int bitDepth = 0, colorType = 0;
    png_get_IHDR(png, info, &width, &height, &bitDepth, &colorType, NULL, NULL, NULL);
    if ((uint64_t)width * (uint64_t)height > maxPixels) {
        status = LITECNN_TOO_LARGE;
        set_message(message, "image is %ux%u = %llu pixels, more than the limit of %llu (decompression-bomb guard)",
                    (unsigned)width, (unsigned)height, (unsigned long long)width * height, (unsigned long long)maxPixels);
        longjmp(context.jump, 1);
    }
    if (colorType == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (colorType == PNG_COLOR_TYPE_GRAY && bitDepth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channelsIn = png_get_channels(png, info);
    int depthOut = png_get_bit_depth(png, info);
    size_t rowBytes = png_get_rowbytes(png, info);
    if (channelsIn < 1 || channelsIn > 4 || (depthOut != 8 && depthOut != 16) ||
        rowBytes != (size_t)width * channelsIn * (depthOut / 8)) {
        set_message(message, "unexpected PNG layout after expansion (%d channels, %d bits)", channelsIn, depthOut);
        longjmp(context.jump, 1);
    }
    raw = (uint8_t *)malloc(rowBytes * height + 1);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (height + 1));
    if (!raw || !rows) {
        set_message(message, "out of memory for a %ux%u image", (unsigned)width, (unsigned)height);
        longjmp(context.jump, 1);
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = raw + (size_t)y * rowBytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);

    int channelsOut = channelsIn <= 2 ? 1 : 3;
    int bytesPerSample = depthOut / 8;
    size_t count = (size_t)width * height;
    if (channelsIn == channelsOut) {
        // No alpha to drop: convert in place (16-bit samples to host order) and hand the buffer over.
        if (bytesPerSample == 2) {
            for (size_t i = 0; i < count * channelsOut; i++) {
                uint16_t value = (uint16_t)((raw[2 * i] << 8) | raw[2 * i + 1]);
                memcpy(raw + 2 * i, &value, 2);
            }
        }
        pixels = raw;
        raw = NULL;
    } else {
        pixels = (uint8_t *)malloc(count * channelsOut * bytesPerSample + 1);
    }
    if (!pixels) {
        set_message(message, "out of memory for a %ux%u image", (unsigned)width, (unsigned)height);
        longjmp(context.jump, 1);
    }
    if (raw == NULL) {
        // converted in place above
    } else if (bytesPerSample == 1) {
        uint8_t *out = pixels;
        for (size_t i = 0; i < count; i++)
            for (int c = 0; c < channelsOut; c++) *out++ = raw[i * channelsIn + c];
    } else {
        uint16_t *out = (uint16_t *)pixels;
        for (size_t i = 0; i < count; i++)
            for (int c = 0; c < channelsOut; c++) {
                const uint8_t *sample = raw + (i * channelsIn + c) * 2;
                *out++ = (uint16_t)((sample[0] << 8) | sample[1]);  // PNG stores 16-bit samples big-endian
            }
    }
    free(raw);
    raw = NULL;
    free(rows);
    rows = NULL;
    png_destroy_read_struct(&png, &info, NULL);
    image->width = (int32_t)width;
    image->height = (int32_t)height;
    image->channels = channelsOut;
    image->bytesPerSample = bytesPerSample;
    image->pixels = pixels;
    return LITECNN_OK;
}

typedef struct {
    uint8_t *data;
    size_t length;
    size_t capacity;
    int failed;
} PNGMemoryWriter;

static void png_write_to_memory(png_structp png, png_bytep data, size_t count) {
    PNGMemoryWriter *writer = (PNGMemoryWriter *)png_get_io_ptr(png);
    if (writer->capacity - writer->length < count) {
        size_t capacity = writer->capacity ? writer->capacity : 4096;
        while (capacity - writer->length < count) capacity *= 2;
        uint8_t *grown = (uint8_t *)realloc(writer->data, capacity);
        if (!grown) png_error(png, "out of memory while encoding");
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->length, data, count);
    writer->length += count;
}

static void png_flush_memory(png_structp png) { (void)png; }

int litecnn_encode_png(const void *pixels, int32_t width, int32_t height, int32_t colorType, int32_t bitDepth,
                       const uint8_t *palette, int32_t paletteCount, const uint8_t *alphas, int32_t alphaCount,
                       int32_t interlaced, uint8_t **output, size_t *outputLength, char *message) {
    *output = NULL;
    *outputLength = 0;
    int channels;
    switch (colorType) {
        case PNG_COLOR_TYPE_GRAY: channels = 1; break;
        case PNG_COLOR_TYPE_RGB: channels = 3; break;
        case PNG_COLOR_TYPE_PALETTE: channels = 1; break;
        case PNG_COLOR_TYPE_GRAY_ALPHA: channels = 2; break;
        case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
        default: set_message(message, "unknown PNG color type %d", colorType); return LITECNN_ERROR;
    }
    if (width <= 0 || height <= 0 || (bitDepth != 8 && bitDepth != 16) ||
        (colorType == PNG_COLOR_TYPE_PALETTE && (bitDepth != 8 || paletteCount < 1 || paletteCount > 256))) {
        set_message(message, "cannot encode a %dx%d PNG of color type %d with bit depth %d", width, height, colorType,
                    bitDepth);
        return LITECNN_ERROR;
    }
    PNGErrorContext context;
    context.message = message;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, png_error_handler, png_warning_handler);
    if (!png) {
        set_message(message, "out of memory");
        return LITECNN_ERROR;
    }
    png_infop info = png_create_info_struct(png);
    PNGMemoryWriter writer = {NULL, 0, 0, 0};
    uint8_t *volatile row = NULL;
    if (!info || setjmp(context.jump)) {
        free(writer.data);
        free(row);
        png_destroy_write_struct(&png, info ? &info : NULL);
        if (!info) set_message(message, "out of memory");
        return LITECNN_ERROR;
    }
    png_set_write_fn(png, &writer, png_write_to_memory, png_flush_memory);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bitDepth, colorType,
                 interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (colorType == PNG_COLOR_TYPE_PALETTE) {
        png_color entries[256];
        for (int i = 0; i < paletteCount; i++) {
            entries[i].red = palette[3 * i];
            entries[i].green = palette[3 * i + 1];
            entries[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, entries, paletteCount);
        if (alphas && alphaCount > 0) png_set_tRNS(png, info, (png_bytep)alphas, alphaCount, NULL);
    }
    png_write_info(png, info);
    size_t rowBytes = (size_t)width * channels * (bitDepth / 8);
    row = (uint8_t *)malloc(rowBytes);
    if (!row) png_error(png, "out of memory while encoding");
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++) {
        for (int32_t y = 0; y < height; y++) {
            const uint8_t *source = (const uint8_t *)pixels + (size_t)y * rowBytes;
            if (bitDepth == 8) {
                memcpy(row, source, rowBytes);
            } else {
                const uint16_t *samples = (const uint16_t *)(const void *)source;
                for (size_t i = 0; i < rowBytes / 2; i++) {
                    row[2 * i] = (uint8_t)(samples[i] >> 8);
                    row[2 * i + 1] = (uint8_t)(samples[i] & 0xFF);
                }
            }
            png_write_row(png, row);
        }
    }
    png_write_end(png, NULL);
    free(row);
    row = NULL;
    png_destroy_write_struct(&png, &info);
    *output = writer.data;
    *outputLength = writer.length;
    return LITECNN_OK;
}

// MARK: - JPEG

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *message;
    int truncated;
} JPEGErrorContext;

static void jpeg_error_exit_handler(j_common_ptr info) {
    JPEGErrorContext *context = (JPEGErrorContext *)info->err;
    char text[JMSG_LENGTH_MAX];
    (*info->err->format_message)(info, text);
    set_message(context->message, "%s", text);
    longjmp(context->jump, 1);
}

static void jpeg_emit_message_handler(j_common_ptr info, int level) {
    JPEGErrorContext *context = (JPEGErrorContext *)info->err;
    if (level < 0) {
        info->err->num_warnings++;
        // libjpeg recovers from a file that ends early by inventing an EOI marker and gray pixels; refuse it instead.
        if (info->err->msg_code == JWRN_JPEG_EOF) context->truncated = 1;
    }
}

static void jpeg_output_message_handler(j_common_ptr info) { (void)info; }

/// Progressive JPEGs may hold any number of scans, each a pass over the whole image; a crafted file with thousands of
/// tiny scans costs minutes of CPU. Real encoders use about 10; more than this many is refused.
#define LITECNN_JPEG_MAX_SCANS 256

static void jpeg_progress_handler(j_common_ptr info) {
    if (!info->is_decompressor) return;
    j_decompress_ptr decompress = (j_decompress_ptr)info;
    if (decompress->input_scan_number > LITECNN_JPEG_MAX_SCANS) {
        JPEGErrorContext *context = (JPEGErrorContext *)info->err;
        set_message(context->message, "progressive JPEG has more than %d scans (refused as a decoding-time bomb)",
                    LITECNN_JPEG_MAX_SCANS);
        longjmp(context->jump, 1);
    }
}

static void install_jpeg_errors(JPEGErrorContext *context, char *message) {
    jpeg_std_error(&context->base);
    context->base.error_exit = jpeg_error_exit_handler;
    context->base.emit_message = jpeg_emit_message_handler;
    context->base.output_message = jpeg_output_message_handler;
    context->message = message;
    context->truncated = 0;
}

static int jpeg_output_channels(const struct jpeg_decompress_struct *info, char *message) {
    switch (info->jpeg_color_space) {
        case JCS_GRAYSCALE: return 1;
        case JCS_YCbCr:
        case JCS_RGB: return 3;
        case JCS_CMYK:
        case JCS_YCCK: set_message(message, "CMYK JPEG images are not supported (convert to RGB)"); return 0;
        default:
            if (info->num_components == 1) return 1;
            if (info->num_components == 3) return 3;
            set_message(message, "unsupported JPEG color space with %d components", info->num_components);
            return 0;
    }
}

int litecnn_decode_jpeg(const uint8_t *bytes, size_t length, uint64_t maxPixels, LiteCNNImage *image, char *message) {
    memset(image, 0, sizeof *image);
    if (!is_jpeg(bytes, length)) {
        set_message(message, "not a JPEG file (it does not start with FF D8 FF)");
        return LITECNN_ERROR;
    }
    struct jpeg_decompress_struct info;
    JPEGErrorContext context;
    memset(&info, 0, sizeof info);
    info.err = &context.base;
    install_jpeg_errors(&context, message);
    uint8_t *volatile pixels = NULL;
    volatile int status = LITECNN_ERROR;
    if (setjmp(context.jump)) {
        jpeg_destroy_decompress(&info);
        free(pixels);
        return status;
    }
    jpeg_create_decompress(&info);
    struct jpeg_progress_mgr progress;
    memset(&progress, 0, sizeof progress);
    progress.progress_monitor = jpeg_progress_handler;
    info.progress = &progress;
    jpeg_mem_src(&info, (unsigned char *)bytes, (unsigned long)length);
    jpeg_read_header(&info, TRUE);
    int channels = jpeg_output_channels(&info, message);
    if (channels == 0) longjmp(context.jump, 1);
    if ((uint64_t)info.image_width * info.image_height > maxPixels) {
        status = LITECNN_TOO_LARGE;
        set_message(message, "image is %ux%u = %llu pixels, more than the limit of %llu (decompression-bomb guard)",
                    (unsigned)info.image_width, (unsigned)info.image_height,
                    (unsigned long long)info.image_width * info.image_height, (unsigned long long)maxPixels);
        longjmp(context.jump, 1);
    }
    info.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    if (info.output_components != channels) {
        set_message(message, "libjpeg produced %d components, expected %d", info.output_components, channels);
        longjmp(context.jump, 1);
    }
    size_t rowBytes = (size_t)info.output_width * channels;
    pixels = (uint8_t *)malloc(rowBytes * info.output_height + 1);
    if (!pixels) {
        set_message(message, "out of memory for a %ux%u image", info.output_width, info.output_height);
        longjmp(context.jump, 1);
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = pixels + (size_t)info.output_scanline * rowBytes;
        jpeg_read_scanlines(&info, &row, 1);
        if (context.truncated) break;
    }
    if (context.truncated) {
        set_message(message, "file ends early (truncated JPEG)");
        longjmp(context.jump, 1);
    }
    jpeg_finish_decompress(&info);
    if (context.truncated) {
        set_message(message, "file ends early (truncated JPEG)");
        longjmp(context.jump, 1);
    }
    image->width = (int32_t)info.output_width;
    image->height = (int32_t)info.output_height;
    image->channels = channels;
    image->bytesPerSample = 1;
    image->pixels = pixels;
    jpeg_destroy_decompress(&info);
    return LITECNN_OK;
}

int litecnn_probe_image(const uint8_t *bytes, size_t length, LiteCNNImage *image, char *message) {
    memset(image, 0, sizeof *image);
    if (is_png(bytes, length)) {
        // The IHDR chunk must come first: length(4) "IHDR"(4) width(4) height(4) depth(1) color type(1) …
        if (length < 33 || memcmp(bytes + 12, "IHDR", 4) != 0) {
            set_message(message, "PNG has no IHDR chunk at byte 8");
            return LITECNN_ERROR;
        }
        uint32_t width = (uint32_t)bytes[16] << 24 | (uint32_t)bytes[17] << 16 | (uint32_t)bytes[18] << 8 | bytes[19];
        uint32_t height = (uint32_t)bytes[20] << 24 | (uint32_t)bytes[21] << 16 | (uint32_t)bytes[22] << 8 | bytes[23];
        int colorType = bytes[25];
        image->width = (int32_t)(width > INT32_MAX ? INT32_MAX : width);
        image->height = (int32_t)(height > INT32_MAX ? INT32_MAX : height);
        image->channels = (colorType == PNG_COLOR_TYPE_GRAY || colorType == PNG_COLOR_TYPE_GRAY_ALPHA) ? 1 : 3;
        image->bytesPerSample = bytes[24] == 16 ? 2 : 1;
        return LITECNN_OK;
    }
    if (is_jpeg(bytes, length)) {
        struct jpeg_decompress_struct info;
        JPEGErrorContext context;
        memset(&info, 0, sizeof info);
        info.err = &context.base;
        install_jpeg_errors(&context, message);
        if (setjmp(context.jump)) {
            jpeg_destroy_decompress(&info);
            return LITECNN_ERROR;
        }
        jpeg_create_decompress(&info);
        jpeg_mem_src(&info, (unsigned char *)bytes, (unsigned long)length);
        jpeg_read_header(&info, TRUE);
        int channels = jpeg_output_channels(&info, message);
        if (channels == 0) longjmp(context.jump, 1);
        image->width = (int32_t)info.image_width;
        image->height = (int32_t)info.image_height;
        image->channels = channels;
        image->bytesPerSample = 1;
        jpeg_destroy_decompress(&info);
        return LITECNN_OK;
    }
    set_message(message, "not a PNG or JPEG file");
    return LITECNN_ERROR;
}

int litecnn_encode_jpeg(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels, int32_t quality,
                        int32_t progressive, uint8_t **output, size_t *outputLength, char *message) {
    *output = NULL;
    *outputLength = 0;
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3 && channels != 4) || quality < 1 || quality > 100) {
        set_message(message, "cannot encode a %dx%dx%d JPEG at quality %d", width, height, channels, quality);
        return LITECNN_ERROR;
    }
    struct jpeg_compress_struct info;
    JPEGErrorContext context;
    memset(&info, 0, sizeof info);
    info.err = &context.base;
    install_jpeg_errors(&context, message);
    unsigned char *volatile buffer = NULL;
    unsigned long bufferLength = 0;
    if (setjmp(context.jump)) {
        jpeg_destroy_compress(&info);
        free(buffer);
        return LITECNN_ERROR;
    }
    jpeg_create_compress(&info);
    unsigned char *target = NULL;
    jpeg_mem_dest(&info, &target, &bufferLength);
    info.image_width = (JDIMENSION)width;
    info.image_height = (JDIMENSION)height;
    info.input_components = channels;
    info.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    if (progressive) jpeg_simple_progression(&info);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)info.next_scanline * width * channels);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    buffer = target;
    jpeg_destroy_compress(&info);
    *output = buffer;
    *outputLength = bufferLength;
    return LITECNN_OK;
}

// MARK: - gzip / zlib

int litecnn_inflate(const uint8_t *input, size_t inputLength, uint8_t *output, size_t capacity, size_t *produced,
                    char *message) {
    *produced = 0;
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    if (inflateInit2(&stream, 15 + 32) != Z_OK) {  // 15 + 32: window 32 KB, detect gzip or zlib header
        set_message(message, "cannot initialize zlib");
        return LITECNN_INFLATE_CORRUPT;
    }
    size_t inputPosition = 0, written = 0;
    uint8_t scratch[1];
    int status;
    for (;;) {
        size_t inputLeft = inputLength - inputPosition;
        stream.next_in = (Bytef *)(input + inputPosition);
        stream.avail_in = inputLeft > UINT_MAX ? UINT_MAX : (uInt)inputLeft;
        int full = written == capacity;
        size_t outputLeft = capacity - written;
        stream.next_out = full ? scratch : output + written;
        stream.avail_out = full ? 1 : (outputLeft > UINT_MAX ? UINT_MAX : (uInt)outputLeft);
        uInt availableIn = stream.avail_in, availableOut = stream.avail_out;
        int result = inflate(&stream, Z_NO_FLUSH);
        size_t made = availableOut - stream.avail_out;
        inputPosition += availableIn - stream.avail_in;
        if (full && made > 0) { status = LITECNN_INFLATE_MORE; break; }
        written += made;
        if (result == Z_STREAM_END) {
            // Another gzip member may follow (as `cat a.gz b.gz` makes); anything else after the end is ignored, as gzip does.
            if (inputLength - inputPosition >= 2 && input[inputPosition] == 0x1F && input[inputPosition + 1] == 0x8B) {
                inflateReset(&stream);
                continue;
            }
            status = LITECNN_INFLATE_COMPLETE;
            break;
        }
        if (result == Z_OK) {
            if (made == 0 && availableIn - stream.avail_in == 0 && inputPosition >= inputLength) {
                status = LITECNN_INFLATE_TRUNCATED;
                break;
            }
            continue;
        }
        if (result == Z_BUF_ERROR && inputPosition >= inputLength) { status = LITECNN_INFLATE_TRUNCATED; break; }
        set_message(message, "invalid compressed data (%s)", stream.msg ? stream.msg : zError(result));
        status = LITECNN_INFLATE_CORRUPT;
        break;
    }
    if (status == LITECNN_INFLATE_TRUNCATED) set_message(message, "compressed data ends early (truncated file)");
    inflateEnd(&stream);
    *produced = written;
    return status;
}

int litecnn_gzip_compress(const uint8_t *input, size_t inputLength, int32_t level, uint8_t **output,
                          size_t *outputLength, char *message) {
    *output = NULL;
    *outputLength = 0;
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    if (deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {  // 15 + 16: gzip wrapper
        set_message(message, "cannot initialize zlib at level %d", level);
        return LITECNN_ERROR;
    }
    size_t capacity = deflateBound(&stream, (uLong)inputLength) + 64;
    uint8_t *buffer = (uint8_t *)malloc(capacity);
    if (!buffer) {
        deflateEnd(&stream);
        set_message(message, "out of memory");
        return LITECNN_ERROR;
    }
    size_t inputPosition = 0, written = 0;
    int result;
    do {
        size_t inputLeft = inputLength - inputPosition, outputLeft = capacity - written;
        stream.next_in = (Bytef *)(input + inputPosition);
        stream.avail_in = inputLeft > UINT_MAX ? UINT_MAX : (uInt)inputLeft;
        stream.next_out = buffer + written;
        stream.avail_out = outputLeft > UINT_MAX ? UINT_MAX : (uInt)outputLeft;
        uInt availableIn = stream.avail_in, availableOut = stream.avail_out;
        int last = stream.avail_in == inputLeft;
        result = deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH);
        inputPosition += availableIn - stream.avail_in;
        written += availableOut - stream.avail_out;
        if (result != Z_OK && result != Z_STREAM_END && result != Z_BUF_ERROR) break;
        if (written == capacity && result != Z_STREAM_END) { result = Z_BUF_ERROR; break; }
    } while (result != Z_STREAM_END);
    deflateEnd(&stream);
    if (result != Z_STREAM_END) {
        free(buffer);
        set_message(message, "compression failed (%s)", zError(result));
        return LITECNN_ERROR;
    }
    *output = buffer;
    *outputLength = written;
    return LITECNN_OK;
}
