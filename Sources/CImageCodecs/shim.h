// The system's PNG and JPEG decoders (libpng 1.6, libjpeg-turbo), used by LiteCNNData's image-folder reader.
#include <stdio.h>
#include <setjmp.h>
#include <png.h>
#include <jpeglib.h>
