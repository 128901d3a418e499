"""Store scenes: products composed onto cluttered drawn backgrounds or onto real photos.

Used to train the store detector (models/store/train.py) and to make real JPEG frames for tests and
benchmarks. A catalogue product is either a rendered bottle with its own body colour, label pattern and
logo (`Look`), or cut-out photos of the real product (RGBA sprites, from enrollment). Scenes vary pose,
scale, light, blur, occlusion by hand-coloured shapes, and add unlabeled distractor bottles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CATALOGUE = Path(__file__).resolve().parents[2] / "configs" / "catalogue.json"
BACKDROP_SHARE = 0.25  # of scenes with look-alike surfaces, those whose first one is the whole background


@dataclass(frozen=True)
class Look:
    body: tuple[int, int, int]  # RGB
    accent: tuple[int, int, int]
    pattern: str  # stripes | dots | diagonal | checker | plain
    logo: str  # circle | triangle | square | diamond | none


def catalogue_looks(path: Path = CATALOGUE) -> dict[int, Look]:
    """yolo_class_id -> packaging look, from the catalogue seed."""
    products = json.loads(Path(path).read_text())["products"]
    return {p["yolo_class_id"]: Look(tuple(p["look"]["body"]), tuple(p["look"]["accent"]), p["look"]["pattern"],
                                     p["look"]["logo"]) for p in products}


def render_bottle(look: Look, height: int = 200) -> np.ndarray:
    """RGBA sprite of one bottle, `height` px tall, in canonical pose."""
    w, h = int(height * 0.42), height
    rgba = np.zeros((h, w, 4), np.uint8)
    body, accent = look.body[::-1], look.accent[::-1]  # draw in BGR, convert at the end
    neck_w, cap_h, neck_h = int(w * 0.4), int(h * 0.08), int(h * 0.14)
    x0 = (w - neck_w) // 2
    cv2.rectangle(rgba, (x0, 0), (x0 + neck_w, cap_h), (*accent, 255), -1)  # cap
    cv2.rectangle(rgba, (x0, cap_h), (x0 + neck_w, cap_h + neck_h), (*body, 255), -1)  # neck
    cv2.rectangle(rgba, (0, cap_h + neck_h), (w - 1, h - 1), (*body, 255), -1)  # body
    top, bottom = int(h * 0.42), int(h * 0.82)  # label band
    label = np.ascontiguousarray(rgba[top:bottom, :, :3])
    lh, lw = label.shape[:2]
    if look.pattern == "stripes":
        for y in range(0, lh, max(4, lh // 8)):
            cv2.rectangle(label, (0, y), (lw, y + max(2, lh // 16)), accent, -1)
    elif look.pattern == "dots":
        step = max(6, lw // 4)
        for y in range(step // 2, lh, step):
            for x in range(step // 2, lw, step):
                cv2.circle(label, (x, y), max(2, step // 4), accent, -1)
    elif look.pattern == "diagonal":
        for k in range(-lh, lw, max(6, lw // 4)):
            cv2.line(label, (k, lh), (k + lh, 0), accent, max(2, lw // 12))
    elif look.pattern == "checker":
        step = max(5, lw // 5)
        for y in range(0, lh, step):
            for x in range(0, lw, step):
                if (x // step + y // step) % 2 == 0:
                    cv2.rectangle(label, (x, y), (x + step - 1, y + step - 1), accent, -1)
    rgba[top:bottom, :, :3] = label
    c, r = (w // 2, int(h * 0.3)), max(4, int(w * 0.22))
    logo = {
        "circle": lambda: cv2.circle(rgba, c, r, (*accent, 255), -1),
        "square": lambda: cv2.rectangle(rgba, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), (*accent, 255), -1),
        "triangle": lambda: cv2.fillPoly(
            rgba, [np.array([(c[0], c[1] - r), (c[0] - r, c[1] + r), (c[0] + r, c[1] + r)])], (*accent, 255)
        ),
        "diamond": lambda: cv2.fillPoly(
            rgba, [np.array([(c[0], c[1] - r), (c[0] - r, c[1]), (c[0], c[1] + r), (c[0] + r, c[1])])], (*accent, 255)
        ),
    }
    logo.get(look.logo, lambda: None)()
    return cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA)


@dataclass(frozen=True)
class SquareCrop:
    """Where a square training crop was cut from a photo: top-left corner, side, mirrored or not."""

    x: int
    y: int
    side: int
    mirrored: bool

    @classmethod
    def random(cls, rng: np.random.Generator, shape: tuple[int, ...]) -> SquareCrop:
        """A random square of 40-100% of the short side of a photo of `shape`, mirrored half of the time."""
        h, w = shape[:2]
        side = int(min(h, w) * rng.uniform(0.4, 1.0))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        return cls(x, y, side, bool(rng.random() < 0.5))

    def cut(self, photo: np.ndarray, size: int) -> np.ndarray:
        """This square of `photo`, resized to size x size, float32."""
        crop = cv2.resize(photo[self.y:self.y + self.side, self.x:self.x + self.side], (size, size),
                          interpolation=cv2.INTER_AREA)
        return (crop[:, ::-1] if self.mirrored else crop).astype(np.float32)


def photo_background(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """A random square crop (SquareCrop.random) of an RGB photo, resized to size x size, float32."""
    return SquareCrop.random(rng, photo.shape).cut(photo, size)


def _drawn_background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.integers(0, 256, 3)
    img = np.empty((size, size, 3), np.float32)
    img[:] = base
    gradient = np.linspace(-1, 1, size, dtype=np.float32)[:, None, None] * rng.uniform(-60, 60, 3)
    img += gradient if rng.random() < 0.5 else gradient.transpose(1, 0, 2)
    for _ in range(rng.integers(3, 15)):  # clutter
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        p = rng.integers(0, size, 4)
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, -1)
        elif kind == 1:
            cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(5, size // 5)), color, -1)
        else:
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, int(rng.integers(1, 8)))
    img += rng.normal(0, rng.uniform(2, 12), img.shape)
    return np.clip(img, 0, 255)


def _paste(canvas: np.ndarray, sprite: np.ndarray, rng: np.random.Generator, height: int,
           angle: float, center: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Alpha-blend a rotated, scaled sprite onto the canvas; returns its box (x0, y0, x1, y1) or None."""
    scale = height / sprite.shape[0]
    h, w = sprite.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    out_w, out_h = int(h * sin + w * cos) + 2, int(h * cos + w * sin) + 2
    m[0, 2] += out_w / 2 - w / 2
    m[1, 2] += out_h / 2 - h / 2
    warped = cv2.warpAffine(sprite, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    size = canvas.shape[0]
    x0, y0 = center[0] - out_w // 2, center[1] - out_h // 2
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + out_w, size), min(y0 + out_h, size)
    if cx1 - cx0 < 8 or cy1 - cy0 < 8:
        return None
    part = warped[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0].astype(np.float32)
    alpha = part[:, :, 3:4] / 255.0
    canvas[cy0:cy1, cx0:cx1] = canvas[cy0:cy1, cx0:cx1] * (1 - alpha) + part[:, :, :3] * alpha
    ys, xs = np.nonzero(part[:, :, 3] > 127)
    if len(xs) == 0:
        return None
    return cx0 + xs.min(), cy0 + ys.min(), cx0 + xs.max() + 1, cy0 + ys.max() + 1


Product = Look | Sequence[np.ndarray]  # a rendered look, or cut-out RGBA photos of the real thing


def _sprite(product: Product, rng: np.random.Generator) -> np.ndarray:
    return render_bottle(product) if isinstance(product, Look) else product[int(rng.integers(len(product)))]


def _hand(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Occlude part of the scene with a skin-toned palm and fingers (or a plain patch)."""
    size = canvas.shape[0]
    x, y = (int(v) for v in rng.integers(0, size, 2))
    r = int(rng.integers(size // 14, size // 7))
    skin = tuple(float(v) for v in (np.array([224, 172, 140]) * rng.uniform(0.35, 1.1)))  # RGB, light to dark
    angle = rng.uniform(0, 2 * np.pi)
    cv2.ellipse(canvas, (x, y), (r, int(r * 1.2)), np.degrees(angle), 0, 360, skin, -1)
    for k in range(4):
        a = angle + (k - 1.5) * 0.35
        tip = (int(x + np.cos(a) * r * 2.1), int(y + np.sin(a) * r * 2.1))
        cv2.line(canvas, (x, y), tip, skin, max(2, r // 3))


def _plain_patch(canvas: np.ndarray, rng: np.random.Generator, smallest: int, largest: int) -> None:
    """A plain rectangle of a random colour, `smallest` to `largest` pixels a side, somewhere on the canvas."""
    x, y = rng.integers(0, canvas.shape[0], 2)
    w, h = rng.integers(smallest, largest, 2)
    cv2.rectangle(
        canvas, (int(x), int(y)), (int(x + w), int(y + h)), tuple(float(v) for v in rng.integers(0, 256, 3)), -1
    )


def _texture_window(sprite: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """An RGB window cut from inside a sprite's opaque part (none of its outline), or None if none is found."""
    h, w = sprite.shape[:2]
    for _ in range(10):
        wh, ww = max(4, int(h * rng.uniform(0.15, 0.5))), max(4, int(w * rng.uniform(0.4, 0.9)))
        y, x = int(rng.integers(0, h - wh + 1)), int(rng.integers(0, w - ww + 1))
        window = sprite[y:y + wh, x:x + ww]
        if (window[:, :, 3] > 127).mean() > 0.97:
            return window[:, :, :3].astype(np.float32)
    return None


def paint_look_alike(canvas: np.ndarray, sprite: np.ndarray, rng: np.random.Generator,
                     backdrop: bool = False) -> None:
    """Paint a surface in a product's colours and print but without its shape - a patterned cloth, a
    wallpaper, a printed card: a window from inside the sprite, mirror-tiled over a rotated rectangle or an
    ellipse larger than one tile, or over the whole scene (`backdrop`) with plain objects lying on it that
    leave bottle-sized stretches of print between them. Unlabeled, it teaches the detector that packaging
    needs its outline."""
    window = _texture_window(sprite, rng)
    if window is None:
        return
    size = canvas.shape[0]
    tile = max(6, int(size * rng.uniform(0.04, 0.2)))
    window = cv2.resize(window, (max(4, int(tile * window.shape[1] / window.shape[0])), tile),
                        interpolation=cv2.INTER_AREA)
    rw, rh = (int(v) for v in size * (np.full(2, 1.5) if backdrop else rng.uniform(0.3, 1.0, 2)))
    reps = (rh // window.shape[0] + 2, rw // window.shape[1] + 2)
    mirrored = np.vstack([window, window[::-1]])
    mirrored = np.hstack([mirrored, mirrored[:, ::-1]])
    surface = np.tile(mirrored, ((reps[0] + 1) // 2, (reps[1] + 1) // 2, 1))[:rh, :rw]
    mask = np.zeros((size, size), np.float32)
    center = (int(rng.integers(0, size)), int(rng.integers(0, size)))
    angle = float(rng.uniform(0, 180))
    if backdrop:
        mask[:] = 1.0
    elif rng.random() < 0.5:
        cv2.ellipse(mask, center, (rw // 2, rh // 2), angle, 0, 360, 1.0, -1)
    else:
        corners = cv2.boxPoints((center, (rw, rh), angle))
        cv2.fillPoly(mask, [corners.astype(np.int32)], 1.0)
    m = cv2.getRotationMatrix2D((rw / 2, rh / 2), angle, 1.0)
    m[:, 2] += (center[0] - rw / 2, center[1] - rh / 2)
    placed = cv2.warpAffine(surface, m, (size, size), borderMode=cv2.BORDER_REFLECT) * rng.uniform(0.6, 1.2)
    canvas[:] = canvas * (1 - mask[:, :, None]) + placed * mask[:, :, None]
    for _ in range(int(rng.integers(1, 4)) if backdrop else 0):
        _plain_patch(canvas, rng, size // 8, size // 2)


def render_scene(
    rng: np.random.Generator,
    looks: Mapping[int, Product],
    size: int = 320,
    classes: list[int] | None = None,
    distractors: int | None = None,
    background: np.ndarray | None = None,
    look_alikes: int = 0,
) -> tuple[np.ndarray, list[tuple[int, tuple]]]:
    """One RGB scene and its labels [(class_id, (x0, y0, x1, y1))]; `classes` fixes which products appear.

    `looks` maps class ids to products; `background` (an RGB photo) replaces the drawn background with a
    random crop of it; `look_alikes` surfaces printed like a random product (no outline, unlabeled) go
    under the products."""
    canvas = _drawn_background(rng, size) if background is None else photo_background(rng, background, size)
    for k in range(look_alikes):
        paint_look_alike(canvas, _sprite(looks[list(looks)[int(rng.integers(len(looks)))]], rng), rng,
                         backdrop=k == 0 and rng.random() < BACKDROP_SHARE)
    if classes is None:
        classes = list(rng.choice(list(looks), size=int(rng.integers(0, 4)), replace=True))
    n_distractors = int(rng.integers(0, 3)) if distractors is None else distractors
    labels = []
    items = [(c, looks[c]) for c in classes] + [
        (None, Look(tuple(int(v) for v in rng.integers(0, 256, 3)), tuple(int(v) for v in rng.integers(0, 256, 3)),
                    "plain", "none")) for _ in range(n_distractors)]
    placed: list[tuple[int, int, int]] = []  # (x, y, half-height) of bottles already in the scene
    for class_id, look in items:
        for _ in range(12):  # keep products mostly visible: avoid heavy overlap with earlier ones
            height = int(size * rng.uniform(0.25, 0.7))
            center = (int(rng.integers(size * 0.15, size * 0.85)), int(rng.integers(size * 0.2, size * 0.8)))
            if all(abs(center[0] - x) > 0.3 * (height / 2 + r) or abs(center[1] - y) > 0.9 * (height / 2 + r)
                   for x, y, r in placed):
                break
        placed.append((center[0], center[1], height // 2))
        box = _paste(canvas, _sprite(look, rng), rng, height, float(rng.uniform(-30, 30)), center)
        if box is not None and class_id is not None:
            labels.append((int(class_id), box))
    for _ in range(int(rng.integers(0, 2))):  # occluder: a hand-sized patch, or a hand in photo scenes
        if background is not None and rng.random() < 0.6:
            _hand(canvas, rng)
            continue
        _plain_patch(canvas, rng, size // 12, size // 5)
    canvas *= rng.uniform(0.6, 1.3)  # exposure
    canvas += rng.uniform(-25, 25)
    if rng.random() < 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.5, 1.5))
    return np.clip(canvas, 0, 255).astype(np.uint8), labels


def jpeg_bytes(rgb: np.ndarray, quality: int = 85) -> bytes:
    """Encode an RGB image as JPEG."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
