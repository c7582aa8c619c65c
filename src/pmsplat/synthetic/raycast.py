"""Exact ray casting of a :class:`~pmsplat.synthetic.scene.Scene` (analytic intersections,
vectorised NumPy float64).

Pixel (row i, column j) of an H x W image is the ray through the pixel centre at normalised
image coordinates ((j + 0.5) / W, (i + 0.5) / H) -- the corner-origin convention of normalised
intrinsics. Ray directions are scaled to have camera-z component 1, so the ray parameter of the
first hit **is the z-depth** (distance along the camera's optical axis, not along the ray).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Scene, Texture

EPSILON = 1e-6


@dataclass
class Hits:
    """Closest hit per ray: ray parameter ``t`` (= z-depth), unit ``normal``, texture ``uv`` in
    metres and the ``texture`` each hit uses (an index into :func:`scene_textures`)."""

    t: np.ndarray  # (n,)
    normal: np.ndarray  # (n, 3)
    uv: np.ndarray  # (n, 2)
    texture: np.ndarray  # (n,) int


def scene_textures(scene: Scene) -> list[Texture]:
    return (
        list(scene.room.textures)
        + [box.texture for box in scene.boxes]
        + [sphere.texture for sphere in scene.spheres]
        + [cylinder.texture for cylinder in scene.cylinders]
    )


def pixel_rays(
    camera_to_world: np.ndarray, intrinsics: np.ndarray, height: int, width: int, supersample: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """World ray origins (n, 3) and directions (n, 3) with camera-z component 1, for every
    sub-pixel sample (``supersample`` x ``supersample`` per pixel, stratified around the centre;
    1 = the pixel centre). Row-major pixel order, samples of one pixel contiguous."""
    offsets = (np.arange(supersample) + 0.5) / supersample
    rows = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1) / height
    columns = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1) / width
    v, u = np.meshgrid(rows, columns, indexing="ij")
    x = (u - intrinsics[0, 2]) / intrinsics[0, 0]
    y = (v - intrinsics[1, 2]) / intrinsics[1, 1]
    directions = np.stack([x, y, np.ones_like(x)], axis=-1)
    # reorder (H*s, W*s) -> (H, W, s, s) so each pixel's samples are contiguous
    directions = directions.reshape(height, supersample, width, supersample, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 3)
    world_directions = directions @ camera_to_world[:3, :3].T
    origins = np.broadcast_to(camera_to_world[:3, 3], world_directions.shape)
    return origins, world_directions


def _update(hits: Hits, t: np.ndarray, normal: np.ndarray, uv: np.ndarray, texture: int, rays: np.ndarray | None = None) -> None:
    """Keep the closer of the current hit and (t, normal, uv) for ``rays`` (all rays if None)."""
    rays = np.arange(len(hits.t)) if rays is None else rays
    closer = t < hits.t[rays]
    chosen = rays[closer]
    hits.t[chosen] = t[closer]
    hits.normal[chosen] = normal[closer]
    hits.uv[chosen] = uv[closer]
    hits.texture[chosen] = texture


def _near_rays(origins: np.ndarray, directions: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Indices of rays passing within ``radius`` of ``centre`` (a conservative bounding-sphere
    cull; the exact test follows on these rays only)."""
    relative = centre - origins
    along = np.einsum("ij,ij->i", relative, directions)
    squared_norm = np.einsum("ij,ij->i", directions, directions)
    distance_squared = np.einsum("ij,ij->i", relative, relative) - along**2 / squared_norm
    return np.nonzero(distance_squared <= radius**2 * (1 + 1e-9) + 1e-12)[0]


def _room(scene: Scene, origins: np.ndarray, directions: np.ndarray) -> Hits:
    """Exit point of rays starting inside the room box."""
    room = scene.room
    with np.errstate(divide="ignore", invalid="ignore"):
        t_low = (room.low - origins) / directions
        t_high = (room.high - origins) / directions
    t_exit_axes = np.where(directions > 0, t_high, t_low)
    t_exit_axes = np.where(directions == 0, np.inf, t_exit_axes)
    axis = np.argmin(t_exit_axes, axis=1)
    t = t_exit_axes[np.arange(len(axis)), axis]
    positive_side = directions[np.arange(len(axis)), axis] > 0
    face = 2 * axis + positive_side
    normal = np.zeros_like(directions)
    normal[np.arange(len(axis)), axis] = np.where(positive_side, -1.0, 1.0)
    points = origins + t[:, None] * directions
    in_plane = np.array([[2, 1], [0, 2], [0, 1]])[axis]  # x-walls: (z, y); floor/ceiling: (x, z); z-walls: (x, y)
    uv = np.take_along_axis(points, in_plane, axis=1)
    return Hits(t, normal, uv, face)


def _boxes(scene: Scene, origins: np.ndarray, directions: np.ndarray, hits: Hits, first_texture: int) -> None:
    all_origins, all_directions = origins, directions
    for offset, box in enumerate(scene.boxes):
        rays = _near_rays(all_origins, all_directions, box.centre, float(np.linalg.norm(box.half_size)))
        origins, directions = all_origins[rays], all_directions[rays]
        cos, sin = np.cos(box.yaw), np.sin(box.yaw)
        rotation = np.array([[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]])  # box frame -> world
        local_origins = (origins - box.centre) @ rotation
        local_directions = directions @ rotation
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-box.half_size - local_origins) / local_directions
            t2 = (box.half_size - local_origins) / local_directions
        t_near_axes = np.minimum(t1, t2)
        t_far_axes = np.maximum(t1, t2)
        parallel = local_directions == 0
        inside_slab = np.abs(local_origins) <= box.half_size
        t_near_axes = np.where(parallel, np.where(inside_slab, -np.inf, np.inf), t_near_axes)
        t_far_axes = np.where(parallel, np.where(inside_slab, np.inf, -np.inf), t_far_axes)
        axis = np.argmax(t_near_axes, axis=1)
        rows = np.arange(len(axis))
        t_near = t_near_axes[rows, axis]
        t_far = t_far_axes.min(axis=1)
        hit = (t_near <= t_far) & (t_near > EPSILON)
        t = np.where(hit, t_near, np.inf)
        local_normal = np.zeros_like(directions)
        local_normal[rows, axis] = -np.sign(local_directions[rows, axis])
        points = local_origins + np.where(hit, t, 0)[:, None] * local_directions
        in_plane = np.array([[2, 1], [0, 2], [0, 1]])[axis]
        uv = np.take_along_axis(points, in_plane, axis=1)
        _update(hits, t, local_normal @ rotation.T, uv, first_texture + offset, rays)


def _spheres(scene: Scene, origins: np.ndarray, directions: np.ndarray, hits: Hits, first_texture: int) -> None:
    all_origins, all_directions = origins, directions
    for offset, sphere in enumerate(scene.spheres):
        rays = _near_rays(all_origins, all_directions, sphere.centre, sphere.radius)
        origins, directions = all_origins[rays], all_directions[rays]
        relative = origins - sphere.centre
        a = np.einsum("ij,ij->i", directions, directions)
        b = 2 * np.einsum("ij,ij->i", directions, relative)
        c = np.einsum("ij,ij->i", relative, relative) - sphere.radius**2
        discriminant = b * b - 4 * a * c
        root = np.sqrt(np.maximum(discriminant, 0))
        t = (-b - root) / (2 * a)
        t = np.where((discriminant >= 0) & (t > EPSILON), t, np.inf)
        points = relative + np.where(np.isfinite(t), t, 0)[:, None] * directions
        normal = points / sphere.radius
        azimuth = np.arctan2(normal[:, 0], normal[:, 2])
        elevation = np.arcsin(np.clip(normal[:, 1], -1, 1))
        uv = sphere.radius * np.stack([azimuth, elevation], axis=1)
        _update(hits, t, normal, uv, first_texture + offset, rays)


def _cylinders(scene: Scene, origins: np.ndarray, directions: np.ndarray, hits: Hits, first_texture: int) -> None:
    all_origins, all_directions = origins, directions
    for offset, cylinder in enumerate(scene.cylinders):
        half_height = (cylinder.y_high - cylinder.y_low) / 2
        centre = np.array([cylinder.centre_xz[0], (cylinder.y_low + cylinder.y_high) / 2, cylinder.centre_xz[1]])
        rays = _near_rays(all_origins, all_directions, centre, float(np.hypot(half_height, cylinder.radius)))
        origins, directions = all_origins[rays], all_directions[rays]
        ox = origins[:, 0] - cylinder.centre_xz[0]
        oz = origins[:, 2] - cylinder.centre_xz[1]
        dx, dz = directions[:, 0], directions[:, 2]
        a = dx * dx + dz * dz
        b = 2 * (ox * dx + oz * dz)
        c = ox * ox + oz * oz - cylinder.radius**2
        discriminant = b * b - 4 * a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(np.maximum(discriminant, 0))) / (2 * a)
        y_side = origins[:, 1] + t_side * directions[:, 1]
        side = (discriminant >= 0) & (a > 0) & (t_side > EPSILON) & (y_side >= cylinder.y_low) & (y_side <= cylinder.y_high)
        t_side = np.where(side, t_side, np.inf)
        side_x, side_z = ox + np.where(side, t_side, 0) * dx, oz + np.where(side, t_side, 0) * dz
        side_normal = np.stack([side_x, np.zeros_like(side_x), side_z], axis=1) / cylinder.radius
        side_uv = np.stack([cylinder.radius * np.arctan2(side_x, side_z), y_side], axis=1)
        _update(hits, t_side, side_normal, np.where(side[:, None], side_uv, 0), first_texture + offset, rays)
        for cap_y, cap_sign in ((cylinder.y_low, -1.0), (cylinder.y_high, 1.0)):
            with np.errstate(divide="ignore", invalid="ignore"):
                t_cap = (cap_y - origins[:, 1]) / directions[:, 1]
            cap_x, cap_z = ox + np.where(np.isfinite(t_cap), t_cap, 0) * dx, oz + np.where(np.isfinite(t_cap), t_cap, 0) * dz
            cap = np.isfinite(t_cap) & (t_cap > EPSILON) & (cap_x**2 + cap_z**2 <= cylinder.radius**2)
            cap_normal = np.broadcast_to(np.array([0.0, cap_sign, 0.0]), directions.shape)
            _update(hits, np.where(cap, t_cap, np.inf), cap_normal, np.stack([cap_x, cap_z], axis=1), first_texture + offset, rays)


def intersect(scene: Scene, origins: np.ndarray, directions: np.ndarray) -> Hits:
    """Closest hit of every ray (origins inside the room, outside every object)."""
    hits = _room(scene, origins, directions)
    first = len(scene.room.textures)
    _boxes(scene, origins, directions, hits, first)
    first += len(scene.boxes)
    _spheres(scene, origins, directions, hits, first)
    first += len(scene.spheres)
    _cylinders(scene, origins, directions, hits, first)
    return hits


def shade(scene: Scene, hits: Hits, directions: np.ndarray) -> np.ndarray:
    """RGB in [0, 1]: procedural texture x (ambient + diffuse) with a fixed directional light.
    Normals are flipped to face the viewer, so shading does not depend on the viewpoint."""
    textures = scene_textures(scene)
    colour = np.zeros((len(hits.t), 3))
    for index, texture in enumerate(textures):
        mask = hits.texture == index
        if mask.any():
            colour[mask] = evaluate_texture(texture, hits.uv[mask])
    light = scene.light_direction / np.linalg.norm(scene.light_direction)
    normal = hits.normal * np.where(np.einsum("ij,ij->i", hits.normal, directions) > 0, -1.0, 1.0)[:, None]
    diffuse = np.clip(normal @ -light, 0, None)
    return np.clip(colour * (0.6 + 0.4 * diffuse)[:, None], 0, 1)


def evaluate_texture(texture: Texture, uv: np.ndarray) -> np.ndarray:
    """(n, 2) surface coordinates in metres -> (n, 3) colours."""
    phase = uv @ texture.waves[:, :2].T + texture.waves[:, 2]
    wave = (np.sin(phase) * texture.waves[:, 3]).sum(axis=1) / texture.waves[:, 3].sum()
    mix = (0.5 + 0.5 * wave)[:, None]
    cells = np.floor(uv / texture.checker_size).sum(axis=1) % 2
    colour = texture.colour_a * (1 - mix) + texture.colour_b * mix
    return colour * (1 - texture.checker_contrast * cells)[:, None]


@dataclass
class Frame:
    """One rendered view: ``image`` (H, W, 3) in [0, 1]; ``depth`` (H, W) z-depth of the pixel
    centre ray; ``pointmap`` (H, W, 3) world point of the pixel centre ray."""

    image: np.ndarray
    depth: np.ndarray
    pointmap: np.ndarray


def render(
    scene: Scene, camera_to_world: np.ndarray, intrinsics: np.ndarray, height: int, width: int, supersample: int = 2
) -> Frame:
    """Render colour (averaging ``supersample``^2 stratified rays per pixel) and the exact
    z-depth and world point of each pixel-centre ray."""
    origins, directions = pixel_rays(camera_to_world, intrinsics, height, width, 1)
    centre_hits = intersect(scene, origins, directions)
    depth = centre_hits.t.reshape(height, width)
    pointmap = (origins + centre_hits.t[:, None] * directions).reshape(height, width, 3)
    if supersample == 1:
        colour = shade(scene, centre_hits, directions)
    else:
        origins, directions = pixel_rays(camera_to_world, intrinsics, height, width, supersample)
        colour = shade(scene, intersect(scene, origins, directions), directions)
        colour = colour.reshape(height * width, supersample * supersample, 3).mean(axis=1)
    return Frame(colour.reshape(height, width, 3), depth, pointmap)
