"""Procedural outdoor LiDAR sweeps: a SemanticKITTI-like scan that needs no download.

A straight street (road, raised sidewalks, terrain verges) lined with buildings, parked and
moving cars, pedestrians, poles and trees, seen by a spinning multi-beam sensor 1.73 m above
the road (as on the KITTI car). Points are the first hits of the beams (ray casting against
boxes, spheres and the ground plane), so they have the ring pattern, range-dependent density
and occlusion of a real sweep. Labels are SemanticKITTI training ids (only the classes that
occur here), features are a remission value per class with noise, and instances (cars,
people) follow SemanticKITTI: stuff points have instance 0. Deterministic given the seed.
"""
from __future__ import annotations

import numpy as np

from ws3d_jax.data import common
from ws3d_jax.data.labels import IGNORE_LABEL, SEMANTICKITTI_CLASSES

_K = {name: i for i, name in enumerate(SEMANTICKITTI_CLASSES)}
CAR, PERSON, ROAD, SIDEWALK, TERRAIN = (_K[n] for n in ('car', 'person', 'road', 'sidewalk',
                                                        'terrain'))
BUILDING, POLE, VEGETATION, TRUNK = (_K[n] for n in ('building', 'pole', 'vegetation', 'trunk'))
_REMISSION = {CAR: 0.55, PERSON: 0.35, ROAD: 0.22, SIDEWALK: 0.30, TERRAIN: 0.38,
              BUILDING: 0.42, POLE: 0.50, VEGETATION: 0.28, TRUNK: 0.32}
SENSOR_HEIGHT = 1.73
MAX_RANGE = 80.0


class _Street:
  """Axis-aligned boxes and spheres with class and instance ids."""

  def __init__(self):
    self.box_lo, self.box_hi, self.box_cls, self.box_inst = [], [], [], []
    self.sph_c, self.sph_r, self.sph_cls = [], [], []
    self.num_instances = 0

  def box(self, center, size, cls, thing=False):
    center, size = np.asarray(center, float), np.asarray(size, float)
    self.box_lo.append(center - size / 2)
    self.box_hi.append(center + size / 2)
    self.box_cls.append(cls)
    if thing:
      self.num_instances += 1
    self.box_inst.append(self.num_instances if thing else 0)

  def sphere(self, center, radius, cls):
    self.sph_c.append(center)
    self.sph_r.append(radius)
    self.sph_cls.append(cls)


def _layout(rng) -> tuple[_Street, float, float]:
  street, road = _Street(), rng.uniform(5.0, 8.0)  # half width: 2 lanes + parking
  walk = rng.uniform(1.5, 3.0)
  for side in (-1, 1):
    street.box((0, side * (road + walk / 2), 0.075), (2 * MAX_RANGE, walk, 0.15), SIDEWALK)
    x = -MAX_RANGE
    while x < MAX_RANGE:  # a row of buildings with gaps, set back behind a verge
      length, gap = rng.uniform(8, 25), rng.uniform(0, 8)
      depth, height = rng.uniform(8, 15), rng.uniform(5, 15)
      setback = road + walk + rng.uniform(2, 8)
      street.box((x + length / 2, side * (setback + depth / 2), height / 2),
                 (length, depth, height), BUILDING)
      x += length + gap
    for x in np.arange(-MAX_RANGE, MAX_RANGE, rng.uniform(15, 30)):  # street lights
      street.box((x + rng.uniform(-2, 2), side * (road + 0.4), 3.5), (0.2, 0.2, 7.0), POLE)
    for _ in range(rng.integers(4, 12)):  # trees on the verge
      tx, ty = rng.uniform(-60, 60), side * (road + walk + rng.uniform(0.8, 1.8))
      trunk = rng.uniform(1.5, 3.0)
      street.box((tx, ty, trunk / 2), (0.35, 0.35, trunk), TRUNK)
      r = rng.uniform(1.2, 2.5)
      street.sphere((tx, ty, trunk + r * 0.8), r, VEGETATION)
    for _ in range(rng.integers(0, 4)):  # hedges and bushes on the verge
      l, h = rng.uniform(1, 10), rng.uniform(0.5, 1.8)
      street.box((rng.uniform(-60, 60), side * (road + walk + rng.uniform(0.5, 1.5)), h / 2),
                 (l, rng.uniform(0.6, 1.5), h), VEGETATION)
    for _ in range(rng.integers(2, 10)):  # parked cars along the curb
      l, w, h = rng.uniform(3.8, 4.8), rng.uniform(1.6, 1.9), rng.uniform(1.4, 1.7)
      street.box((rng.uniform(-60, 60), side * (road - w / 2 - 0.2), h / 2), (l, w, h), CAR,
                 thing=True)
    for _ in range(rng.integers(0, 6)):  # pedestrians on the sidewalk
      street.box((rng.uniform(-30, 30), side * (road + rng.uniform(0.5, walk - 0.3)),
                  0.15 + 0.87), (0.5, 0.5, rng.uniform(1.6, 1.9)), PERSON, thing=True)
  for _ in range(rng.integers(0, 4)):  # cars driving in the lanes (not at the sensor)
    x = rng.choice([-1, 1]) * rng.uniform(8, 40)
    street.box((x, rng.choice([-1, 1]) * road / 2, 0.75), (4.3, 1.8, 1.5), CAR, thing=True)
  return street, road, walk


def _rays(rng, num_beams, num_azimuth):
  elevation = np.deg2rad(np.linspace(-24.8, 2.0, num_beams))
  azimuth = np.linspace(-np.pi, np.pi, num_azimuth, endpoint=False)
  el, az = np.meshgrid(elevation, azimuth, indexing='ij')
  az = az + rng.normal(0, 1e-3, az.shape)
  return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(
      -1, 3)


def _hit_boxes(origin, dirs, lo, hi):
  """(R, B) ray parameter of the first hit of each ray on each box (inf when it misses)."""
  with np.errstate(divide='ignore', invalid='ignore'):
    inv = 1.0 / dirs
    t0 = (lo[None] - origin) * inv[:, None]
    t1 = (hi[None] - origin) * inv[:, None]
  near = np.nanmax(np.minimum(t0, t1), axis=-1)
  far = np.nanmin(np.maximum(t0, t1), axis=-1)
  return np.where((far >= near) & (near > 0), near, np.inf)


def _hit_spheres(origin, dirs, centres, radii):
  oc = origin - centres  # (S, 3)
  b = dirs @ oc.T  # (R, S)
  disc = b**2 - ((oc**2).sum(1) - radii**2)[None]
  t = -b - np.sqrt(np.maximum(disc, 0))
  return np.where((disc >= 0) & (t > 0), t, np.inf)


def make_sweep(seed: int, num_beams: int = 32, num_azimuth: int = 1024,
               range_noise: float = 0.02) -> dict:
  """One synthetic sweep as a scene dict (sensor at the origin, z up; features =
  remission (N, 1))."""
  rng = np.random.default_rng(seed)
  street, road, walk = _layout(rng)
  origin = np.array([0.0, -road / 2, SENSOR_HEIGHT])  # the sensor car drives in its lane
  dirs = _rays(rng, num_beams, num_azimuth)

  t_box = _hit_boxes(origin, dirs, np.array(street.box_lo), np.array(street.box_hi))
  t_sph = _hit_spheres(origin, dirs, np.array(street.sph_c), np.array(street.sph_r))
  with np.errstate(divide='ignore'):
    t_ground = np.where(dirs[:, 2] < 0, -SENSOR_HEIGHT / dirs[:, 2], np.inf)
  t_all = np.concatenate([t_box, t_sph, t_ground[:, None]], 1)
  first = np.argmin(t_all, 1)
  t = t_all[np.arange(len(dirs)), first]
  keep = t < MAX_RANGE
  first, t, dirs = first[keep], t[keep], dirs[keep]

  n_box, n_sph = t_box.shape[1], t_sph.shape[1]
  cls_of = np.array(street.box_cls + street.sph_cls + [IGNORE_LABEL], np.int32)
  inst_of = np.array(street.box_inst + [0] * n_sph + [0], np.int32)
  semantic, instance = cls_of[first], inst_of[first]
  xyz = origin + dirs * (t + rng.normal(0, range_noise, t.shape))[:, None]
  ground = first == n_box + n_sph
  semantic[ground] = np.where(np.abs(xyz[ground, 1]) < road, ROAD, TERRAIN)
  xyz -= origin  # the sensor frame, as in KITTI: the road lies at z = -1.73

  remission = np.array([_REMISSION[c] for c in semantic]) + rng.normal(0, 0.05, len(t))
  return common.make_scene(f'sweep_{int(seed):06d}', xyz, np.clip(remission, 0, 1),
                           semantic, common.consecutive_instances(instance))
