"""Forward-moving camera paths like RealEstate10K clips (walking into a room).

Cameras are camera-to-world 4x4 with OpenCV axes in the y-down world of
:mod:`pmsplat.synthetic.scene`; intrinsics are normalised (fx/W, fy/H, cx/W, cy/H) with the
principal point at the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Scene


@dataclass
class PathLayout:
    start_z: tuple[float, float] = (0.8, 1.2)
    travel: tuple[float, float] = (2.2, 3.0)  # metres walked over the whole clip
    start_x: tuple[float, float] = (-0.8, 0.8)
    height: tuple[float, float] = (-0.3, 0.2)  # camera y (y is down, floor near +1.3)
    yaw: tuple[float, float] = (-0.25, 0.25)  # initial heading, radians
    yaw_change: tuple[float, float] = (-0.25, 0.25)  # total heading change over the clip
    pitch: tuple[float, float] = (-0.08, 0.12)
    sway: tuple[float, float] = (0.0, 0.15)  # lateral sway amplitude, metres
    focal: tuple[float, float] = (0.75, 0.95)  # normalised focal length (fx/W = fy/H)


def rotation_yaw_pitch_roll(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about world y, then pitch about camera x, roll about z."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


def random_camera_path(
    rng: np.random.Generator, scene: Scene, frames: int, layout: PathLayout | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(frames, 4, 4) camera-to-world extrinsics and (frames, 3, 3) normalised intrinsics of a
    smooth forward walk with slowly turning heading and gentle sway, kept inside the room."""
    layout = layout or PathLayout()
    room = scene.room
    progress = np.linspace(0.0, 1.0, frames)
    yaw = rng.uniform(*layout.yaw) + rng.uniform(*layout.yaw_change) * progress
    pitch = np.full(frames, rng.uniform(*layout.pitch)) + 0.02 * np.sin(2 * np.pi * progress * rng.uniform(0.5, 1.5))
    roll = 0.02 * np.sin(2 * np.pi * progress * rng.uniform(0.5, 1.5) + rng.uniform(0, 2 * np.pi))
    step = rng.uniform(*layout.travel) / max(frames - 1, 1)
    heading = np.stack([np.sin(yaw), np.zeros(frames), np.cos(yaw)], axis=1)
    positions = np.cumsum(np.concatenate([np.zeros((1, 3)), heading[:-1] * step]), axis=0)
    positions += np.array([rng.uniform(*layout.start_x), rng.uniform(*layout.height), rng.uniform(*layout.start_z)])
    sway = rng.uniform(*layout.sway) * np.sin(2 * np.pi * progress * rng.uniform(0.5, 1.5) + rng.uniform(0, 2 * np.pi))
    positions[:, 0] += sway * np.cos(yaw)
    positions[:, 2] -= sway * np.sin(yaw)
    margin = 0.6
    positions[:, 0] = np.clip(positions[:, 0], room.low[0] + margin, room.high[0] - margin)
    extrinsics = np.tile(np.eye(4), (frames, 1, 1))
    for frame in range(frames):
        extrinsics[frame, :3, :3] = rotation_yaw_pitch_roll(yaw[frame], pitch[frame], roll[frame])
    extrinsics[:, :3, 3] = positions
    focal = rng.uniform(*layout.focal)
    intrinsics = np.tile(np.array([[focal, 0, 0.5], [0, focal, 0.5], [0, 0, 1.0]]), (frames, 1, 1))
    return extrinsics, intrinsics
