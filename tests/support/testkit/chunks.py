"""Hand-built dataset chunks in upstream's format (written from the format description, not with
splatcore's encoder), shared by the dataset tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HEIGHT, WIDTH = 36, 64


def rotation(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def jpeg_bytes(seed: int, height: int = HEIGHT, width: int = WIDTH) -> tuple[torch.Tensor, np.ndarray]:
    """(encoded bytes as a 1-D uint8 tensor, the image PIL decodes back, (H, W, 3) uint8)."""
    rng = np.random.default_rng(seed)
    array = (rng.uniform(0, 255, (height // 4, width // 4, 3))).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8), decoded


def hand_built_scene(key: str, frames: int, seed: int = 0, size=(HEIGHT, WIDTH)):
    """A chunk example written from the format description (not with splatcore's encoder):
    cameras row = [fx/W, fy/H, cx/W, cy/H, 0, 0, row-major w2c 3x4]."""
    c2ws, rows, images, decoded = [], [], [], []
    for frame in range(frames):
        c2w = np.eye(4)
        c2w[:3, :3] = rotation(seed * 100 + frame)
        c2w[:3, 3] = [0.1 * frame, -0.2, 1.5 + 0.05 * frame]
        w2c = np.linalg.inv(c2w)
        fx, fy, cx, cy = 50.0 + frame, 52.0, 31.0, 17.5  # pixels
        rows.append([fx / size[1], fy / size[0], cx / size[1], cy / size[0], 0.0, 0.0, *w2c[:3, :4].reshape(-1)])
        data, image = jpeg_bytes(seed * 100 + frame, *size)
        images.append(data)
        decoded.append(image)
        c2ws.append(c2w)
    example = {
        "key": key,
        "url": "https://www.youtube.com/watch?v=example",
        "timestamps": torch.arange(frames, dtype=torch.int64) * 33366,
        "cameras": torch.tensor(rows, dtype=torch.float32),
        "images": images,
    }
    return example, np.stack(c2ws), np.array(rows), np.stack(decoded)


def write_root(root: Path, examples_per_chunk: list[list[dict]], stage_dir: str = "test") -> Path:
    directory = root / stage_dir
    directory.mkdir(parents=True, exist_ok=True)
    index = {}
    for number, examples in enumerate(examples_per_chunk):
        name = f"{number:06d}.torch"
        torch.save(examples, directory / name)
        index.update({example["key"]: name for example in examples})
    (directory / "index.json").write_text(json.dumps(index))
    return root
