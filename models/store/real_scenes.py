"""A corpus of real photos and video with no catalogue product in them, gathered from installed packages.

    apt-get install opencv-doc gnome-backgrounds mate-backgrounds plasma-workspace-wallpapers \
        sway-backgrounds ukui-wallpapers lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04
    python -m models.store.real_scenes --out data/real_scenes     # writes configs/real_scenes.json too

The store's detector must not see products in real scenes; these pictures are its negatives, the
backgrounds its training scenes are composed on, and its phantom test. Sources: scikit-image's and
matplotlib's sample data, OpenCV's documentation and samples (opencv-doc: people, rooms, tables, streets,
screens, and the sample videos) and the wallpaper packages above. A picture that is mostly one colour
(a diagram, a mask, a logo) is left out; the same picture at several resolutions is kept once (an 8x8
average hash). About a quarter of the pictures, chosen by their content hash, are held out - never for
training or for choosing thresholds - and so are whole videos (HELD_OUT_VIDEOS: a street with people
walking and a table with a cup, the scenes the detector was found to see products in); the training
videos give one picture per distinct view. The video of a box turned in a hand is no scene: it is the
real product that bench.enrollment teaches the detector (PRODUCT_VIDEOS). The list (source, hash, split) is committed as
configs/real_scenes.json; the pictures are not (rebuild them with this module).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

LIST_FILE = Path(__file__).resolve().parents[2] / "configs" / "real_scenes.json"
SYSTEM_FOLDERS = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"), Path("/usr/share/doc/opencv-doc"))
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mp4.gz")
HELD_OUT_VIDEOS = ("vtest.avi", "cup.mp4.gz")
PRODUCT_VIDEOS = ("box.mp4.gz",)  # a real product, handled from all sides: what bench.enrollment enrolls
MAX_SIDE = 960  # pictures are stored no larger than a kiosk camera frame needs
HELD_OUT_EVERY = 4  # one picture in four (by content hash) is held out
MAX_FLAT_SHARE = 0.4  # a picture whose commonest colour covers more than this is a drawing, not a scene
VIDEO_FPS = 10.0  # held-out videos are kept as a kiosk streams them


def package_folders() -> list[Path]:
    """Folders of installed packages that ship photos and videos."""
    import matplotlib
    import skimage
    folders = [Path(skimage.__file__).parent / "data", Path(matplotlib.get_data_path()) / "sample_data"]
    return folders + [f for f in SYSTEM_FOLDERS if f.is_dir()]


def average_hash(image: np.ndarray) -> str:
    """64-bit average hash of a picture (same for the same picture at another resolution)."""
    small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (8, 8), interpolation=cv2.INTER_AREA)
    return "%016x" % int("".join("1" if v else "0" for v in (small > small.mean()).ravel()), 2)


def flat_share(image: np.ndarray) -> float:
    """Share of the picture covered by its commonest colour (16 levels a channel)."""
    q = (image // 16).reshape(-1, 3).astype(np.int32)
    return float(np.bincount(q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2]).max() / len(q))


def scene(image: np.ndarray | None) -> np.ndarray | None:
    """The picture no larger than MAX_SIDE, or None for what is not a usable scene (tiny, flat, drawn)."""
    if image is None or min(image.shape[:2]) < 128 or image.std() < 8 or flat_share(image) > MAX_FLAT_SHARE:
        return None
    scale = MAX_SIDE / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


def video_frames(path: Path, fps: float = VIDEO_FPS) -> Iterator[np.ndarray]:
    """The video's frames at about `fps` (gzip-compressed videos are unpacked first)."""
    with tempfile.TemporaryDirectory() as tmp:
        if path.name.endswith(".gz"):
            unpacked = Path(tmp) / path.name[:-3]
            unpacked.write_bytes(gzip.decompress(path.read_bytes()))
            path = unpacked
        capture = cv2.VideoCapture(str(path))
        step = max(capture.get(cv2.CAP_PROP_FPS) / fps, 1.0)
        index, next_kept = 0, 0.0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index >= next_kept:
                next_kept += step
                yield frame
            index += 1
        capture.release()


def _write(out: Path, relative: str, image: np.ndarray) -> None:
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / relative), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


class _Stills:
    """The distinct still pictures gathered so far, written under `out` as they come."""

    def __init__(self, out: Path):
        self.out, self.seen, self.entries = out, set(), []

    def add(self, image: np.ndarray | None, source: str, split: str | None = None) -> None:
        """Keep a usable picture not seen before; in `split`, or held out one in HELD_OUT_EVERY by content."""
        image = scene(image)
        key = average_hash(image) if image is not None else None
        if key is None or key in self.seen:
            return
        self.seen.add(key)
        digest = hashlib.sha256(key.encode()).hexdigest()
        split = split or ("heldout" if int(digest, 16) % HELD_OUT_EVERY == 0 else "train")
        self.entries.append({"file": f"{split}/{digest[:16]}.jpg", "source": source, "hash": key, "split": split})
        _write(self.out, self.entries[-1]["file"], image)


def build(out: Path, folders: list[Path] | None = None) -> list[dict]:
    """Gather (from `folders`, default: package_folders()), de-duplicate and split the corpus into
    out/{train,heldout,heldout_video}/; returns its list."""
    files = sorted(p for folder in folders or package_folders() for p in folder.rglob("*") if p.is_file())
    photos = [p for p in files if p.name.lower().endswith(PHOTO_SUFFIXES)]
    videos = [p for p in files if p.name.lower().endswith(VIDEO_SUFFIXES) and p.name not in PRODUCT_VIDEOS]
    stills = _Stills(out)
    for path in tqdm(photos, desc="real pictures", unit="file"):
        stills.add(cv2.imread(str(path), cv2.IMREAD_COLOR), str(path))
    held_out = []
    for path in tqdm(videos, desc="real videos", unit="video"):
        if path.name not in HELD_OUT_VIDEOS:  # one picture per distinct view, for training
            for i, frame in enumerate(video_frames(path)):
                stills.add(frame, f"{path}#{i}", split="train")
            continue
        frames = [f for f in map(scene, video_frames(path)) if f is not None]
        folder = f"heldout_video/{path.name.split('.')[0]}"
        for i, frame in enumerate(frames):
            _write(out, f"{folder}/{i:05d}.jpg", frame)
        held_out.append({"file": folder, "source": str(path), "frames": len(frames), "split": "heldout"})
    return stills.entries + held_out


def pictures(folder: Path, split: str) -> list[Path]:
    """The still pictures of one split ("train" or "heldout") of a built corpus."""
    return sorted((folder / split).glob("*.jpg"))


def held_out_videos(folder: Path) -> list[list[Path]]:
    """The held-out videos of a built corpus, each as its frames at VIDEO_FPS."""
    return [sorted(v.glob("*.jpg")) for v in sorted((folder / "heldout_video").glob("*")) if v.is_dir()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Gather real photos and video with no product from installed packages."
    )
    parser.add_argument("--out", type=Path, default=Path("data/real_scenes"))
    args = parser.parse_args()
    entries = build(args.out)
    LIST_FILE.write_text(json.dumps(entries, indent=1))
    stills = [e for e in entries if "hash" in e]
    counts = {s: sum(e["split"] == s for e in stills) for s in ("train", "heldout")}
    video = {e["file"]: e["frames"] for e in entries if "frames" in e}
    print(f"{len(stills)} distinct pictures ({counts['train']} train, {counts['heldout']} held out) and held-out "
          f"videos {video} in {args.out}; list in {LIST_FILE}")


if __name__ == "__main__":
    main()
