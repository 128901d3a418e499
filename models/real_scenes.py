"""A corpus of real photos with no catalogue product in them, gathered from installed packages.

    apt-get install gnome-backgrounds mate-backgrounds plasma-workspace-wallpapers sway-backgrounds \
        ukui-wallpapers lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04   # Debian
    python -m models.real_scenes --out data/real_scenes     # writes configs/real_scenes.json too

The store's detector must not see products in real scenes; these photos are its negatives and its
phantom test. Sources: scikit-image's sample data, matplotlib's sample data and the wallpaper packages
above (/usr/share/backgrounds, /usr/share/wallpapers). The same picture shipped at several resolutions is
kept once (an 8x8 average hash). About a quarter of the pictures, chosen by their content hash, are held
out - never for training or for choosing thresholds. The list (source, hash, split) is committed as
configs/real_scenes.json; the pictures are not (rebuild them with this module).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

LIST_FILE = Path(__file__).resolve().parents[1] / "configs" / "real_scenes.json"
SYSTEM_FOLDERS = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"))
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_SIDE = 960  # pictures are stored no larger than a kiosk camera frame needs
HELD_OUT_EVERY = 4  # one picture in four (by content hash) is held out


def package_folders() -> list[Path]:
    """Folders of installed packages that ship photos."""
    import matplotlib
    import skimage
    folders = [Path(skimage.__file__).parent / "data", Path(matplotlib.get_data_path()) / "sample_data"]
    return folders + [f for f in SYSTEM_FOLDERS if f.is_dir()]


def average_hash(image: np.ndarray) -> str:
    """64-bit average hash of a picture (same for the same picture at another resolution)."""
    small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (8, 8), interpolation=cv2.INTER_AREA)
    return "%016x" % int("".join("1" if v else "0" for v in (small > small.mean()).ravel()), 2)


def photo(path: Path) -> np.ndarray | None:
    """A colour picture no larger than MAX_SIDE, or None for what is not a usable photo (tiny, flat)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or min(image.shape[:2]) < 128 or image.std() < 8:
        return None
    scale = MAX_SIDE / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


def build(out: Path) -> list[dict]:
    """Gather, de-duplicate and split the corpus into out/{train,heldout}/; returns its list."""
    candidates = sorted(p for folder in package_folders() for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    seen: set[str] = set()
    entries = []
    for path in tqdm(candidates, desc="real scenes", unit="file"):
        image = photo(path)
        if image is None:
            continue
        key = average_hash(image)
        if key in seen:
            continue
        seen.add(key)
        digest = hashlib.sha256(key.encode()).hexdigest()
        split = "heldout" if int(digest, 16) % HELD_OUT_EVERY == 0 else "train"
        name = f"{digest[:16]}.jpg"
        (out / split).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / split / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        entries.append({"file": f"{split}/{name}", "source": str(path), "hash": key, "split": split})
    return entries


def held_out(folder: Path) -> list[Path]:
    """The held-out pictures of a built corpus."""
    return sorted((folder / "heldout").glob("*.jpg"))


def main() -> None:
    parser = argparse.ArgumentParser(description="Gather real photos with no product from installed packages.")
    parser.add_argument("--out", type=Path, default=Path("data/real_scenes"))
    args = parser.parse_args()
    entries = build(args.out)
    LIST_FILE.write_text(json.dumps(entries, indent=1))
    counts = {s: sum(e["split"] == s for e in entries) for s in ("train", "heldout")}
    print(f"{len(entries)} distinct pictures ({counts['train']} train, {counts['heldout']} held out) in {args.out}; "
          f"list in {LIST_FILE}")


if __name__ == "__main__":
    main()
