"""Draws the app's icons (the web app manifest's, the favicon) into console_ui/static/icons.

Run once after changing the drawing (``python tools/make_icons.py``); the PNGs are committed, so
a deployment needs no Pillow. One shape at every size: a white video camera in a white ring on the
page's navy, with a margin that survives a maskable icon's circular crop.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parents[1] / "console_ui" / "static" / "icons"
NAVY = (11, 61, 145, 255)
WHITE = (255, 255, 255, 255)
SIZES = (32, 180, 192, 512)
# Drawn large and scaled down, so small sizes keep smooth edges.
CANVAS = 1024


def draw() -> Image.Image:
    image = Image.new("RGBA", (CANVAS, CANVAS), NAVY)
    pen = ImageDraw.Draw(image)
    centre = CANVAS / 2
    ring = CANVAS * 0.30  # inside the maskable safe zone (a circle of 40 % radius)
    pen.ellipse(
        (centre - ring, centre - ring, centre + ring, centre + ring),
        outline=WHITE,
        width=int(CANVAS * 0.045),
    )
    # A video camera, as on the page's call button: a body and its lens wedge.
    body = CANVAS * 0.30
    tall = CANVAS * 0.21
    left = centre - body * 0.72
    top = centre - tall / 2
    pen.rounded_rectangle((left, top, left + body, top + tall), radius=CANVAS * 0.035, fill=WHITE)
    wedge_left = left + body + CANVAS * 0.02
    pen.polygon(
        [
            (wedge_left, centre - tall * 0.12),
            (wedge_left + CANVAS * 0.13, centre - tall * 0.45),
            (wedge_left + CANVAS * 0.13, centre + tall * 0.45),
            (wedge_left, centre + tall * 0.12),
        ],
        fill=WHITE,
    )
    return image


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    big = draw()
    for size in SIZES:
        big.resize((size, size), Image.Resampling.LANCZOS).save(ICONS / f"icon-{size}.png")
    big.resize((32, 32), Image.Resampling.LANCZOS).save(
        ICONS / "favicon.ico", sizes=[(16, 16), (32, 32)]
    )


if __name__ == "__main__":
    main()
