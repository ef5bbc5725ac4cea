"""Chart pictures for the demo gallery, drawn with Pillow: what an analyst's screenshot of a dashboard might
look like (a title bar, axes and grid, and a bar, line, area, scatter, table or tile-map chart in the
workbook's tag colour). ``seed_demo`` sends them through the normal upload pipeline (validation, master,
derivatives rendered by the Celery task), so the demo shows real ``<picture>`` elements."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from workbooks import previews

SIZE = (768, 432)  # drawn at this size, saved at OUTPUT (derivatives: 320 and 640 px wide)
OUTPUT = (640, 360)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _tint(rgb: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(round(c + (255 - c) * amount) for c in rgb)  # type: ignore[return-value]


def chart_png(*, workbook_id: int, tag_slugs: list[str], colour: str) -> bytes:
    """A PNG "screenshot" of the workbook's chart (the same kind its generated preview would show)."""
    kind = previews.chart_kind(workbook_id, tag_slugs)
    rng = random.Random(workbook_id * 7919 + 17)
    rgb = _rgb(colour)
    width, height = SIZE
    image = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 44), fill=(245, 247, 250))
    draw.rectangle((24, 16, 24 + rng.randint(160, 320), 28), fill=(29, 36, 48))  # the title
    for i in range(3):  # KPI tiles
        x: float = 24 + i * 120  # points of the charts below are floats
        draw.rounded_rectangle((x, 60, x + 104, 104), radius=6, fill=_tint(rgb, 0.85))
        draw.rectangle((x + 10, 70, x + 10 + rng.randint(40, 80), 84), fill=rgb)
    left, top, right, bottom = 48, 124, width - 24, height - 36
    for i in range(5):  # grid
        y: float = top + i * (bottom - top) // 4
        draw.line((left, y, right, y), fill=(226, 232, 240), width=1)
    draw.line((left, bottom, right, bottom), fill=(100, 116, 139), width=2)
    values = [rng.uniform(0.15, 0.95) for _ in range(12)]
    for i in range(1, 12):  # a walk, not noise
        values[i] = min(0.95, max(0.08, values[i - 1] + rng.uniform(-0.18, 0.2)))
    step = (right - left) / 12
    points = [(left + step * (i + 0.5), bottom - v * (bottom - top)) for i, v in enumerate(values)]
    if kind == "bar":
        for x, y in points:
            draw.rectangle((x - step * 0.32, y, x + step * 0.32, bottom), fill=rgb)
    elif kind in ("line", "area"):
        if kind == "area":
            draw.polygon([(points[0][0], bottom), *points, (points[-1][0], bottom)], fill=_tint(rgb, 0.6))
        draw.line(points, fill=rgb, width=5, joint="curve")
    elif kind == "scatter":
        slope = rng.uniform(-0.6, 0.6)
        for _ in range(60):
            x = rng.uniform(left + 8, right - 8)
            y = (top + bottom) / 2 - slope * (x - (left + right) / 2) * 0.5 + rng.gauss(0, 40)
            y = min(bottom - 8, max(top + 8, y))
            draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=_tint(rgb, rng.uniform(0, 0.5)))
    elif kind == "table":
        row_h = (bottom - top) // 8
        for r in range(8):
            y = top + r * row_h
            if r == 0:
                draw.rectangle((left, y, right, y + row_h - 4), fill=rgb)
                continue
            draw.rectangle((left, y + 6, left + 150, y + row_h - 10), fill=(203, 213, 225))
            draw.rectangle(
                (left + 200, y + 6, left + 200 + rng.randint(40, 420), y + row_h - 10), fill=_tint(rgb, 0.45)
            )
    else:  # map: a choropleth of tiles
        cx, cy = rng.uniform(300, 460), rng.uniform(220, 300)
        for row in range(8):
            for col in range(16):
                x, y = left + 20 + col * 42, top + row * 34
                if ((x - cx) / 330) ** 2 + ((y - cy) / 150) ** 2 + rng.uniform(-0.3, 0.3) > 1:
                    continue
                draw.rectangle((x, y, x + 36, y + 28), fill=_tint(rgb, rng.choice((0.0, 0.35, 0.7))))
    out = io.BytesIO()
    image.resize(OUTPUT, Image.Resampling.LANCZOS).save(out, format="PNG", optimize=True)
    return out.getvalue()
