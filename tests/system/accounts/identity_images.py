"""Real image bytes made with Pillow for the identity tests, and the upload request."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from PIL import ExifTags, Image

GPS_LATITUDE = (37.0, 56.0, 20.0)  # San Quentin, more or less


def photo_with_gps(
    size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    """A JPEG with an EXIF block: camera make, orientation (rotate 90°) and a GPS position."""
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "LeakyCam"
    exif[ExifTags.Base.Orientation] = 6
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (122.0, 29.0, 10.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png(size: tuple[int, int] = (40, 30), mode: str = "RGBA") -> bytes:
    image = Image.new(mode, size, (10, 120, 200, 128) if mode == "RGBA" else (10, 120, 200))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (10, 10)).save(out, format="GIF")
    return out.getvalue()


def has_metadata(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return bool(dict(image.getexif())) or "exif" in image.info or b"LeakyCam" in data


def images(**override: bytes) -> dict[str, bytes]:
    """The three images of an upload (each a JPEG with GPS), with any replaced."""
    return {
        "id_front": override.get("id_front", photo_with_gps()),
        "id_back": override.get("id_back", photo_with_gps(colour=(30, 200, 30))),
        "selfie": override.get("selfie", png()),
    }


def form(files: dict[str, bytes], names: dict[str, str] | None = None) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for field, content in files.items():
        filename = (names or {}).get(field, f"{field}.jpg")
        data.add_field(field, content, filename=filename, content_type="image/jpeg")
    return data


async def upload(url: str, token: str, files: dict[str, bytes], **kw: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/api/v1/account/identity",
            data=form(files),
            headers={"Authorization": f"Bearer {token}"},
            **kw,
        ) as response,
    ):
        return response.status, await response.json()
