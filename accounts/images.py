"""Identity images checked by content and re-encoded clean (PROTOCOL v1.2 identity upload).

An upload is accepted only if Pillow opens it as a JPEG or a PNG (its bytes, never its name or
its declared type), it passes :meth:`PIL.Image.Image.verify`, and it decodes whole within
:data:`MAX_PIXELS`. What is stored is not the upload but a fresh JPEG of its pixels: the EXIF
block (GPS location above all, camera serials, thumbnails), XMP, ICC and any trailing bytes are
gone; the EXIF orientation is applied to the pixels first, so the photo still stands upright.
"""

from __future__ import annotations

import io
import warnings
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_IMAGE_BYTES: Final = 5 * 1024 * 1024
MAX_PIXELS: Final = 40_000_000  # a 40 MP phone photo; past it, a decompression bomb
ACCEPTED_FORMATS: Final = frozenset({"JPEG", "PNG"})
JPEG_QUALITY: Final = 90
CONTENT_TYPE: Final = "image/jpeg"


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; the message says why (for the uploader)."""


def clean_image(data: bytes, what: str = "image") -> bytes:
    """``data`` checked (a JPEG or PNG that decodes) and re-encoded as a JPEG with no metadata.

    Blocking and CPU-bound: call it from a thread in async code."""
    if not data:
        raise ImageRejected(f"{what} is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(f"{what} is over {MAX_IMAGE_BYTES} bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                kind = probe.format
                if kind not in ACCEPTED_FORMATS:
                    raise ImageRejected(
                        f"{what} is a {kind or 'unknown'} image; send a JPEG or PNG"
                    )
                if probe.width * probe.height > MAX_PIXELS:
                    raise ImageRejected(f"{what} is over {MAX_PIXELS} pixels")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                return _jpeg(upright)
        except ImageRejected:
            raise
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ):
            raise ImageRejected(f"{what} is not a JPEG or PNG image") from None
        except (OSError, SyntaxError, ValueError, EOFError):  # truncated or corrupt data
            raise ImageRejected(f"{what} is not a readable JPEG or PNG image") from None


def _jpeg(image: Image.Image) -> bytes:
    """The pixels alone as a JPEG: no EXIF, XMP, ICC profile or comment is carried over."""
    if image.mode not in ("RGB", "L"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    pixels = Image.new(image.mode, image.size)
    pixels.paste(image)
    out = io.BytesIO()
    pixels.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
