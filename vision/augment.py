"""Batched augmentation of 28x28 letter images, made for handwriting.

Every image of a batch gets its own random stroke weight (grey-level dilation
or erosion blended in), its own affine map (rotation, scale, aspect, shear,
shift) and its own smooth elastic displacement field; the whole batch is then
resampled in one :func:`scipy.ndimage.map_coordinates` call. No step loops over
images.

The letter stays in the frame: each image's clear ink (above a quarter
intensity, after the stroke change) is carried through its affine map, the map
is shrunk if the ink would not fit and the shift is clamped so that the ink,
widened by the blur around strokes and the largest elastic displacement, lands
inside the 28x28 frame. (EMNIST letters already fill 24 of the 28 pixels, so
up-scaling is mostly taken back by that check.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SIZE = 28
CENTRE = (SIZE - 1) / 2
INK = 0.25   # intensity that counts as the letter when keeping it in the frame
HALO = 1.0   # pixels of fainter blur beyond that ink (and of bilinear reach)
PIXELS = np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")).astype(np.float64)  # (2, 28, 28)


@dataclass(frozen=True)
class AugmentOptions:
    """Ranges of the random changes (uniform in +-range unless said otherwise)."""

    rotate_degrees: float = 12.0
    scale: float = 0.12          # log-uniform in [1/(1+s), 1+s]
    aspect: float = 0.10         # extra horizontal-only scale, log-uniform like ``scale``
    shear: float = 0.25          # x += shear * y
    shift: float = 2.5           # pixels, before clamping to keep the letter in the frame
    elastic_pixels: float = 1.0  # largest elastic displacement
    elastic_sigma: float = 3.5   # smoothness of the elastic field (pixels)
    stroke_probability: float = 0.5  # share of images whose strokes get thicker or thinner

    def scaled(self, strength: float) -> "AugmentOptions":
        """These ranges times ``strength`` (0 turns augmentation off)."""
        return AugmentOptions(self.rotate_degrees * strength, self.scale * strength, self.aspect * strength,
                              self.shear * strength, self.shift * strength, self.elastic_pixels * strength,
                              self.elastic_sigma, min(1.0, self.stroke_probability * strength))


def change_strokes(images: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    """Thicken or thin the strokes of about ``probability`` of the images.

    ``images`` are float in [0, 1]; a 3x3 grey dilation (erosion) is blended in with a random weight, so stroke
    width changes continuously. Thinning stops at two thirds of an erosion: EMNIST strokes are 2-4 pixels
    wide, and a full erosion would wipe out the thinnest.
    """
    n = len(images)
    change = rng.random(n) < probability
    thicker = rng.random(n) < 0.5
    weight = np.where(thicker, rng.uniform(0.3, 1.0, n), rng.uniform(0.2, 0.65, n)).astype(np.float32)[:, None, None]
    if not change.any():
        return images
    footprint = np.ones((1, 3, 3), bool)   # 3x3 within each image, never across the batch
    grown = ndimage.grey_dilation(images, footprint=footprint)
    shrunk = ndimage.grey_erosion(images, footprint=footprint)
    target = np.where(thicker[:, None, None], grown, shrunk)
    blended = images + weight * (target - images)
    return np.where(change[:, None, None], blended, images)


def random_affines(n: int, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    """(n, 2, 2) linear maps on (row, col) offsets from the centre: rotation @ shear @ scale."""
    angle = np.deg2rad(rng.uniform(-options.rotate_degrees, options.rotate_degrees, n))
    log_s = np.log1p(options.scale)
    log_a = np.log1p(options.aspect)
    scale = np.exp(rng.uniform(-log_s, log_s, n))
    aspect = np.exp(rng.uniform(-log_a, log_a, n))
    shear = rng.uniform(-options.shear, options.shear, n)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    # (row, col): shear moves columns in proportion to the row, as slanted handwriting does
    shear_m = np.stack([np.stack([np.ones(n), np.zeros(n)], -1), np.stack([shear, np.ones(n)], -1)], -2)
    scale_m = np.stack([np.stack([scale, np.zeros(n)], -1), np.stack([np.zeros(n), scale * aspect], -1)], -2)
    return rotation @ shear_m @ scale_m


def _fit_in_frame(affines: np.ndarray, ink: np.ndarray, shifts: np.ndarray, elastic: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Shrink maps that would carry ink beyond the frame, clamp shifts so that all ink stays inside.

    Every ink pixel's offset from the centre goes through its image's map; the
    extent of the result, widened by the halo and the elastic displacement (in
    input pixels, so times the map's largest stretch), must fit in the frame.
    """
    moved = np.einsum("nij,jp->npi", affines, PIXELS.reshape(2, -1) - CENTRE)   # (n, 784 pixels, 2)
    inside = ink.reshape(len(ink), -1, 1)
    empty = ~inside.any(axis=1)                                          # (n, 1): nothing to keep in the frame
    low = np.where(empty, 0.0, np.where(inside, moved, np.inf).min(axis=1))
    high = np.where(empty, 0.0, np.where(inside, moved, -np.inf).max(axis=1))
    margin = np.linalg.norm(affines, 2, axis=(1, 2)) * (HALO + elastic)
    room = (SIZE - 1) - 2 * margin
    shrink = np.minimum(1.0, room / np.maximum((high - low).max(axis=1), 1e-9))
    affines = affines * shrink[:, None, None]
    low, high, margin = low * shrink[:, None], high * shrink[:, None], (margin * shrink)[:, None]
    # the ink's image must satisfy margin <= CENTRE + shift + low and CENTRE + shift + high <= SIZE - 1 - margin
    shifts = np.clip(shifts, margin - CENTRE - low, SIZE - 1 - margin - CENTRE - high)
    return affines, shifts


def elastic_fields(n: int, rng: np.random.Generator, pixels: float, sigma: float) -> np.ndarray:
    """(n, 2, 28, 28) smooth random displacements, each image's largest exactly ``pixels`` long (or zero)."""
    if pixels <= 0:
        return np.zeros((n, 2, SIZE, SIZE))
    noise = rng.standard_normal((n, 2, SIZE, SIZE), dtype=np.float32)
    smooth = ndimage.gaussian_filter(noise, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=3.0)
    length = np.sqrt((smooth ** 2).sum(axis=1)).max(axis=(1, 2))
    return smooth * (pixels / np.maximum(length, 1e-12))[:, None, None, None]


def augment(images: np.ndarray, rng: np.random.Generator, options: AugmentOptions = AugmentOptions()
            ) -> np.ndarray:
    """Randomly changed copies of upright uint8 images (N, 28, 28), as uint8; the same ``rng`` gives the same batch."""
    n = len(images)
    work = images.astype(np.float32) * np.float32(1 / 255)
    if options.stroke_probability > 0:
        work = change_strokes(work, rng, options.stroke_probability)
    affines = random_affines(n, rng, options)
    shifts = rng.uniform(-options.shift, options.shift, (n, 2))
    affines, shifts = _fit_in_frame(affines, work > INK, shifts, options.elastic_pixels)
    # inverse map: each output pixel p reads the input at A^-1 (p - centre - shift) + centre (+ elastic offset)
    offsets = PIXELS[None] - CENTRE - shifts[:, :, None, None]                         # (n, 2, 28, 28)
    source = np.einsum("nij,njhw->nihw", np.linalg.inv(affines), offsets) + CENTRE
    source += elastic_fields(n, rng, options.elastic_pixels, options.elastic_sigma)
    index = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], (n, SIZE, SIZE))
    coords = np.stack([index, source[:, 0], source[:, 1]], 0)
    out = ndimage.map_coordinates(work, coords, order=1, mode="constant", cval=0.0)
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
