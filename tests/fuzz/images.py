"""The image sniffer (``server.actions.uploads``): the header read, then the whole decode.
Refusal: ``AppError`` (a 4xx)."""

from __future__ import annotations

import io

from PIL import Image

from server.actions.uploads import read_header, sniff_image
from server.core.errors import AppError
from tests.fuzz.harness import Target


def one_input(data: bytes) -> None:
    try:
        read_header(data)
        sniff_image(data)
    except AppError:
        return


def _image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (9, 7), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


SEEDS = [_image("JPEG"), _image("PNG"), _image("WEBP"), _image("GIF"), _image("BMP")]

TARGET = Target("images", one_input, SEEDS)
