"""Procedural scene description for the synthetic benchmark.

World frame: OpenCV-like, **y points down** (the floor is at ``room.high[1]``), z is the walking
direction. A scene is a textured box room seen from the inside plus foreground objects (oriented
boxes, spheres, vertical poles, thin bars) placed in front of the camera path, so that views have
strong depth discontinuities and textured surfaces. Units are metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Texture:
    """Procedural texture: a mix of two colours driven by a sum of plane waves plus a checker.

    colour(u, v) = lerp(colour_a, colour_b, wave(u, v)) * (1 - checker_contrast * checker(u, v))
    with (u, v) in metres on the surface. ``waves`` rows are (k_u, k_v, phase, amplitude)."""

    colour_a: np.ndarray
    colour_b: np.ndarray
    waves: np.ndarray
    checker_size: float
    checker_contrast: float


@dataclass
class Room:
    low: np.ndarray  # (3,) min corner
    high: np.ndarray  # (3,) max corner
    textures: list[Texture]  # 6 faces: -x, +x, -y (ceiling), +y (floor), -z, +z


@dataclass
class Box:
    centre: np.ndarray  # (3,)
    half_size: np.ndarray  # (3,) in the box frame
    yaw: float  # rotation about the world y axis (radians)
    texture: Texture


@dataclass
class Sphere:
    centre: np.ndarray
    radius: float
    texture: Texture


@dataclass
class Cylinder:
    """Vertical (world-y) capped cylinder from ``y_low`` (top, y is down) to ``y_high``."""

    centre_xz: np.ndarray  # (2,)
    radius: float
    y_low: float
    y_high: float
    texture: Texture


@dataclass
class Scene:
    room: Room
    boxes: list[Box] = field(default_factory=list)
    spheres: list[Sphere] = field(default_factory=list)
    cylinders: list[Cylinder] = field(default_factory=list)
    light_direction: np.ndarray = field(default_factory=lambda: np.array([0.35, -0.8, -0.45]))


@dataclass
class SceneLayout:
    """Ranges of the procedural generator (metres, counts)."""

    room_half_width: tuple[float, float] = (2.8, 3.8)
    ceiling: tuple[float, float] = (-2.4, -1.8)
    floor: tuple[float, float] = (1.1, 1.5)
    room_depth: tuple[float, float] = (11.0, 14.0)
    object_z_start: float = 5.5  # objects start this far into the room (camera ends before ~4.2)
    boxes: tuple[int, int] = (2, 4)
    spheres: tuple[int, int] = (1, 3)
    poles: tuple[int, int] = (1, 3)
    bars: tuple[int, int] = (0, 2)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.15, 0.95, 3)


def random_texture(rng: np.random.Generator, wavelength: tuple[float, float] = (0.35, 1.4)) -> Texture:
    count = int(rng.integers(3, 6))
    angles = rng.uniform(0, np.pi, count)
    lengths = rng.uniform(*wavelength, count)
    frequencies = 2 * np.pi / lengths
    waves = np.stack(
        [frequencies * np.cos(angles), frequencies * np.sin(angles), rng.uniform(0, 2 * np.pi, count), rng.uniform(0.3, 1.0, count)],
        axis=1,
    )
    return Texture(
        colour_a=random_colour(rng),
        colour_b=random_colour(rng),
        waves=waves,
        checker_size=float(rng.uniform(0.3, 0.9)),
        checker_contrast=float(rng.uniform(0.1, 0.35)),
    )


def random_scene(rng: np.random.Generator, layout: SceneLayout | None = None) -> Scene:
    """A random room with foreground objects beyond ``layout.object_z_start``."""
    layout = layout or SceneLayout()
    half_width = rng.uniform(*layout.room_half_width)
    low = np.array([-half_width, rng.uniform(*layout.ceiling), 0.0])
    high = np.array([half_width, rng.uniform(*layout.floor), rng.uniform(*layout.room_depth)])
    room = Room(low, high, [random_texture(rng, (0.6, 2.0)) for _ in range(6)])
    scene = Scene(room)
    floor = high[1]
    z_range = (layout.object_z_start, high[2] - 1.0)
    x_range = (low[0] + 0.5, high[0] - 0.5)

    for _ in range(int(rng.integers(layout.boxes[0], layout.boxes[1] + 1))):
        half = rng.uniform([0.25, 0.25, 0.25], [0.8, 0.9, 0.8])
        centre = np.array([rng.uniform(*x_range), floor - half[1] - rng.choice([0.0, rng.uniform(0.3, 1.2)]), rng.uniform(*z_range)])
        scene.boxes.append(Box(centre, half, float(rng.uniform(-0.8, 0.8)), random_texture(rng, (0.25, 0.9))))
    for _ in range(int(rng.integers(layout.bars[0], layout.bars[1] + 1))):
        half = np.array([rng.uniform(0.6, 1.4), rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.07)])
        centre = np.array([rng.uniform(*x_range), rng.uniform(low[1] + 0.6, floor - 0.4), rng.uniform(*z_range)])
        scene.boxes.append(Box(centre, half, float(rng.uniform(-0.5, 0.5)), random_texture(rng, (0.2, 0.6))))
    for _ in range(int(rng.integers(layout.spheres[0], layout.spheres[1] + 1))):
        radius = rng.uniform(0.25, 0.7)
        centre = np.array([rng.uniform(*x_range), rng.uniform(low[1] + radius + 0.2, floor - radius), rng.uniform(*z_range)])
        scene.spheres.append(Sphere(centre, float(radius), random_texture(rng, (0.2, 0.7))))
    for _ in range(int(rng.integers(layout.poles[0], layout.poles[1] + 1))):
        top = rng.uniform(low[1] + 0.1, floor - 1.0)
        scene.cylinders.append(
            Cylinder(np.array([rng.uniform(*x_range), rng.uniform(*z_range)]), float(rng.uniform(0.03, 0.09)), float(top), float(floor), random_texture(rng, (0.2, 0.5)))
        )
    return scene
