"""Procedural indoor rooms: the built-in data set that needs no download.

A room is a floor, four walls (one with a door) and the furniture of its type (bedroom, living
room, office, storage: tables with chairs, cabinets, sofas, beds, bookshelves with books,
clutter on the floor and on furniture), built from boxes and prisms and sampled uniformly
over their visible surfaces with a little noise, like a ScanNet mesh's vertices. Every class
has its own shape, size, height and colour family, so the segmentation task is learnable;
colours vary per object and a third of the furniture wears a finish every class shares, so
colour alone is not enough. Labels use labels.SYNTHETIC_CLASSES; every object is one instance (floor and each
wall too, as in S3DIS). A room is a deterministic function of its seed.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ws3d_jax.data import common
from ws3d_jax.data.labels import SYNTHETIC_CLASSES

FLOOR, WALL, DOOR, TABLE, CHAIR, CABINET, SOFA, BED, BOOKSHELF, CLUTTER = range(10)
assert SYNTHETIC_CLASSES[CLUTTER] == 'clutter' and SYNTHETIC_CLASSES[DOOR] == 'door'

# Base colours (rgb 0..1) each class draws from; one per object, then jittered.
_COLOURS = {
    FLOOR: [(0.55, 0.40, 0.25), (0.45, 0.45, 0.46), (0.78, 0.73, 0.62), (0.35, 0.27, 0.20)],
    WALL: [(0.86, 0.86, 0.83), (0.88, 0.82, 0.70), (0.74, 0.79, 0.84), (0.80, 0.84, 0.76)],
    DOOR: [(0.40, 0.24, 0.12), (0.58, 0.38, 0.22), (0.60, 0.60, 0.63), (0.93, 0.93, 0.90)],
    TABLE: [(0.62, 0.44, 0.26), (0.92, 0.92, 0.90), (0.18, 0.18, 0.18), (0.50, 0.33, 0.20)],
    CHAIR: [(0.10, 0.10, 0.12), (0.65, 0.15, 0.15), (0.20, 0.30, 0.60), (0.55, 0.38, 0.22)],
    CABINET: [(0.93, 0.93, 0.92), (0.55, 0.38, 0.22), (0.55, 0.57, 0.60), (0.30, 0.30, 0.32)],
    SOFA: [(0.42, 0.42, 0.44), (0.25, 0.35, 0.55), (0.42, 0.26, 0.15), (0.30, 0.45, 0.30)],
    BED: [(0.92, 0.92, 0.96), (0.80, 0.70, 0.60), (0.60, 0.70, 0.85), (0.85, 0.75, 0.80)],
    BOOKSHELF: [(0.55, 0.38, 0.22), (0.90, 0.90, 0.88), (0.35, 0.22, 0.12)],
    CLUTTER: [(0.85, 0.20, 0.20), (0.20, 0.65, 0.25), (0.95, 0.80, 0.20), (0.25, 0.40, 0.85),
              (0.85, 0.45, 0.10), (0.60, 0.25, 0.65), (0.15, 0.15, 0.15)],
}
# Relative point density: a hand-held scan (and ScanNet's meshes) spends more samples on
# furniture than on large flat walls and floor; this keeps objects from starving.
_DENSITY = {FLOOR: 0.6, WALL: 0.4}
_LIGHT = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])
VAL_SEED_OFFSET = 100_000  # validation rooms never share a seed with training rooms


@dataclasses.dataclass
class _Surfaces:
  """Parallelogram faces (origin + s*u + t*v, s, t in [0, 1]) with their labels and colour."""
  origin: list = dataclasses.field(default_factory=list)
  u: list = dataclasses.field(default_factory=list)
  v: list = dataclasses.field(default_factory=list)
  semantic: list = dataclasses.field(default_factory=list)
  instance: list = dataclasses.field(default_factory=list)
  colour: list = dataclasses.field(default_factory=list)
  num_instances: int = 0

  def new_instance(self) -> int:
    self.num_instances += 1
    return self.num_instances

  def face(self, origin, u, v, cls, inst, colour):
    self.origin.append(origin)
    self.u.append(u)
    self.v.append(v)
    self.semantic.append(cls)
    self.instance.append(inst)
    self.colour.append(colour)

  def box(self, center, size, yaw, cls, inst, colour, skip=('bottom',)):
    """Faces of a box rotated by yaw about z; skip names hidden faces (bottom, top, back,
    front, left, right; back is local -y, the side that stands against a wall)."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    half = np.asarray(size, float) / 2
    names = {(2, -1): 'bottom', (2, 1): 'top', (1, -1): 'back', (1, 1): 'front',
             (0, -1): 'left', (0, 1): 'right'}
    for axis in range(3):
      b, d = [a for a in range(3) if a != axis]
      for sign in (-1, 1):
        if names[(axis, sign)] in skip:
          continue
        corner = np.zeros(3)
        corner[axis], corner[b], corner[d] = sign * half[axis], -half[b], -half[d]
        eb, ed = np.zeros(3), np.zeros(3)
        eb[b], ed[d] = 2 * half[b], 2 * half[d]
        self.face(center + rot @ corner, rot @ eb, rot @ ed, cls, inst, colour)

  def prism(self, center_xy, z0, radius, height, cls, inst, colour, sides=8, top=True):
    """A vertical n-gon prism (bins, pots, lamps) standing at height z0."""
    angles = np.linspace(0, 2 * np.pi, sides + 1)
    ring = np.stack([np.cos(angles), np.sin(angles)], 1) * radius + center_xy
    for a, b in zip(ring[:-1], ring[1:]):
      self.face(np.array([a[0], a[1], z0]), np.array([b[0] - a[0], b[1] - a[1], 0.0]),
                np.array([0.0, 0.0, height]), cls, inst, colour)
    if top:  # a square cap is close enough at this point density
      r = radius * 0.7
      self.face(np.array([center_xy[0] - r, center_xy[1] - r, z0 + height]),
                np.array([2 * r, 0, 0]), np.array([0, 2 * r, 0]), cls, inst, colour)

  def sample(self, rng, num_points, noise):
    origin, u, v = (np.asarray(a, float) for a in (self.origin, self.u, self.v))
    normal = np.cross(u, v)
    area = np.linalg.norm(normal, axis=1)
    weight = area * np.array([_DENSITY.get(c, 1.0) for c in self.semantic])
    idx = rng.choice(len(area), size=num_points, p=weight / weight.sum())
    st = rng.random((num_points, 2))
    xyz = origin[idx] + st[:, :1] * u[idx] + st[:, 1:] * v[idx]
    xyz += rng.normal(0, noise, xyz.shape)
    # Fixed-light shading: faces of one object differ in brightness, as in real scans.
    shade = 0.75 + 0.25 * np.abs(normal / area[:, None] @ _LIGHT)
    rgb = np.asarray(self.colour)[idx] * shade[idx, None] + rng.normal(0, 0.02, xyz.shape)
    return (xyz, np.clip(rgb, 0, 1), np.asarray(self.semantic, np.int32)[idx],
            np.asarray(self.instance, np.int32)[idx])


# Finishes any piece of furniture can have (wood, white, grey, black): a third of the objects
# take one, so colour alone does not tell table from cabinet from bookshelf.
_SHARED = [(0.55, 0.38, 0.22), (0.90, 0.90, 0.88), (0.50, 0.51, 0.53), (0.15, 0.15, 0.16)]
_FURNITURE = (DOOR, TABLE, CHAIR, CABINET, SOFA, BED, BOOKSHELF)
ROOM_TYPES = ('bedroom', 'living', 'office', 'storage')


def _colour(rng, cls) -> np.ndarray:
  palette = _SHARED if cls in _FURNITURE and rng.random() < 0.35 else _COLOURS[cls]
  base = np.asarray(palette[rng.integers(len(palette))])
  return np.clip(base * rng.uniform(0.85, 1.15) + rng.normal(0, 0.03, 3), 0, 1)


def _rotate(xy, yaw):
  c, s = np.cos(yaw), np.sin(yaw)
  return np.array([c * xy[0] - s * xy[1], s * xy[0] + c * xy[1]])


class _Floorplan:
  """Occupied footprints (axis-aligned boxes of rotated rectangles) for rejection sampling."""

  def __init__(self, width, depth):
    self.width, self.depth, self.boxes = width, depth, []

  @staticmethod
  def footprint(cx, cy, w, d, yaw):
    corners = np.array([_rotate((sx * w / 2, sy * d / 2), yaw)
                        for sx in (-1, 1) for sy in (-1, 1)])
    return (cx + corners[:, 0].min(), cy + corners[:, 1].min(),
            cx + corners[:, 0].max(), cy + corners[:, 1].max())

  def free(self, box, margin=0.05, ignore=()):
    x0, y0, x1, y1 = box
    if x0 < 0 or y0 < 0 or x1 > self.width or y1 > self.depth:
      return False
    return all(x1 + margin <= b[0] or b[2] + margin <= x0 or y1 + margin <= b[1]
               or b[3] + margin <= y0 for i, b in enumerate(self.boxes) if i not in ignore)

  def try_add(self, box, margin=0.05, ignore=()):
    if self.free(box, margin, ignore):
      self.boxes.append(box)
      return True
    return False


# --------------------------------------------------------------------------------------------
# Furniture. Each builder gets a footprint centre and yaw; local +y is the object's front.

def _place(center_xy, yaw, local_xyz):
  xy = _rotate(local_xyz[:2], yaw)
  return np.array([center_xy[0] + xy[0], center_xy[1] + xy[1], local_xyz[2]])


def _table(surf, rng, c, yaw, w, d):
  inst, col = surf.new_instance(), _colour(rng, TABLE)
  h, t = rng.uniform(0.70, 0.78), rng.uniform(0.03, 0.05)
  surf.box(_place(c, yaw, (0, 0, h - t / 2)), (w, d, t), yaw, TABLE, inst, col, skip=())
  leg = rng.uniform(0.04, 0.07)
  leg_col = col if rng.random() < 0.5 else _colour(rng, CHAIR) * 0.5
  for sx in (-1, 1):
    for sy in (-1, 1):
      p = (sx * (w / 2 - leg), sy * (d / 2 - leg), (h - t) / 2)
      surf.box(_place(c, yaw, p), (leg, leg, h - t), yaw, TABLE, inst, leg_col,
               skip=('bottom', 'top'))
  return h


def _chair(surf, rng, c, yaw):
  inst, col = surf.new_instance(), _colour(rng, CHAIR)
  w, d = rng.uniform(0.40, 0.50), rng.uniform(0.40, 0.50)
  seat_h, back_h = rng.uniform(0.42, 0.48), rng.uniform(0.35, 0.50)
  surf.box(_place(c, yaw, (0, 0, seat_h)), (w, d, 0.05), yaw, CHAIR, inst, col, skip=())
  surf.box(_place(c, yaw, (0, -d / 2 + 0.025, seat_h + 0.025 + back_h / 2)),
           (w, 0.05, back_h), yaw, CHAIR, inst, col, skip=('bottom',))
  for sx in (-1, 1):
    for sy in (-1, 1):
      p = (sx * (w / 2 - 0.03), sy * (d / 2 - 0.03), (seat_h - 0.025) / 2)
      surf.box(_place(c, yaw, p), (0.035, 0.035, seat_h - 0.025), yaw, CHAIR, inst, col,
               skip=('bottom', 'top'))


def _cabinet(surf, rng, c, yaw, w, d):
  inst, col = surf.new_instance(), _colour(rng, CABINET)
  h = rng.uniform(0.6, 1.2)
  surf.box(_place(c, yaw, (0, 0, h / 2)), (w, d, h), yaw, CABINET, inst, col,
           skip=('bottom', 'back'))
  for _ in range(rng.integers(1, 3)):  # handles
    p = (rng.uniform(-w / 3, w / 3), d / 2 + 0.015, h * rng.uniform(0.5, 0.85))
    surf.box(_place(c, yaw, p), (0.1, 0.03, 0.03), yaw, CABINET, inst, col * 0.6, skip=())
  return h


def _sofa(surf, rng, c, yaw, w, d):
  inst, col = surf.new_instance(), _colour(rng, SOFA)
  seat_h, back_h, arm_w = rng.uniform(0.38, 0.45), rng.uniform(0.75, 0.9), 0.18
  surf.box(_place(c, yaw, (0, 0.1, seat_h / 2)), (w - 2 * arm_w, d - 0.2, seat_h), yaw,
           SOFA, inst, col, skip=('bottom', 'back', 'left', 'right'))
  surf.box(_place(c, yaw, (0, -d / 2 + 0.1, back_h / 2)), (w, 0.2, back_h), yaw, SOFA, inst,
           col * 0.92, skip=('bottom', 'back'))
  for sx in (-1, 1):
    surf.box(_place(c, yaw, (sx * (w / 2 - arm_w / 2), 0.1, 0.3)), (arm_w, d - 0.2, 0.6), yaw,
             SOFA, inst, col * 0.96, skip=('bottom',))


def _bed(surf, rng, c, yaw, w, d):
  inst, frame_col, sheet_col = surf.new_instance(), _colour(rng, CABINET), _colour(rng, BED)
  h = rng.uniform(0.45, 0.6)
  surf.box(_place(c, yaw, (0, 0.03, h / 2)), (w, d - 0.06, h), yaw, BED, inst, sheet_col,
           skip=('bottom', 'back'))
  head = rng.uniform(0.9, 1.2)
  surf.box(_place(c, yaw, (0, -d / 2 + 0.03, head / 2)), (w + 0.04, 0.06, head), yaw, BED,
           inst, frame_col, skip=('bottom', 'back'))
  for sx in ((-1, 1) if w > 1.2 else (0,)):  # pillows
    p = (sx * w / 4, -d / 2 + 0.3, h + 0.06)
    surf.box(_place(c, yaw, p), (min(0.6, w / 2 - 0.05), 0.4, 0.12), yaw, BED, inst,
             _colour(rng, BED), skip=('bottom',))


def _bookshelf(surf, rng, c, yaw, w, d):
  inst, col = surf.new_instance(), _colour(rng, BOOKSHELF)
  h, t = rng.uniform(1.6, 2.2), 0.025
  parts = [((-w / 2 + t / 2, 0, h / 2), (t, d, h)), ((w / 2 - t / 2, 0, h / 2), (t, d, h)),
           ((0, -d / 2 + t / 2, h / 2), (w, t, h))]
  shelves = rng.integers(4, 7)
  levels = np.linspace(0.05, h - t / 2, shelves)
  parts += [((0, 0, z), (w - 2 * t, d, t)) for z in levels]
  for p, size in parts:
    surf.box(_place(c, yaw, p), size, yaw, BOOKSHELF, inst, col, skip=('back',))
  # Books: part of the bookshelf class (as ScanNet annotates filled shelves).
  for z0, z1 in zip(levels[:-1], levels[1:]):
    x = -w / 2 + t
    while x < w / 2 - t - 0.05 and rng.random() < 0.93:
      bw = rng.uniform(0.02, 0.06)
      bh = min(rng.uniform(0.15, 0.3), z1 - z0 - 0.03)
      bd = d * rng.uniform(0.6, 0.9)
      p = (x + bw / 2, -d / 2 + t + bd / 2, z0 + t / 2 + bh / 2)
      surf.box(_place(c, yaw, p), (bw, bd, bh), yaw, BOOKSHELF, inst,
               _colour(rng, CLUTTER), skip=('bottom', 'back'))
      x += bw + rng.uniform(0, 0.02)


def _clutter(surf, rng, xy, z0, max_size=0.4):
  inst, col = surf.new_instance(), _colour(rng, CLUTTER)
  size = rng.uniform(0.08, max_size, 3)
  if rng.random() < 0.4:
    surf.prism(np.asarray(xy), z0, size[0] / 2, size[2], CLUTTER, inst, col)
  else:
    yaw = rng.uniform(0, np.pi)
    surf.box(np.array([xy[0], xy[1], z0 + size[2] / 2]), size, yaw, CLUTTER, inst, col)
  return size


# --------------------------------------------------------------------------------------------
# Room layout.

def _wall_frame(wall, width, depth):
  """(start point, direction along the wall, inward normal, length) of walls 0..3."""
  return [(np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), width),
          (np.array([width, depth]), np.array([-1.0, 0.0]), np.array([0.0, -1.0]), width),
          (np.array([0.0, depth]), np.array([0.0, -1.0]), np.array([1.0, 0.0]), depth),
          (np.array([width, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0]), depth)][wall]


def _walls_and_door(surf, rng, plan, width, depth, height):
  door_wall = int(rng.integers(4))
  wall_col = _colour(rng, WALL)
  for wall in range(4):
    start, along, _, length = _wall_frame(wall, width, depth)
    inst = surf.new_instance()
    pieces = [(0.0, length, 0.0)]
    if wall == door_wall:
      door_w, door_h = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1)
      t = rng.uniform(0.2, length - door_w - 0.2)
      pieces = [(0.0, t, 0.0), (t + door_w, length, 0.0), (t, t + door_w, door_h)]
      _door(surf, rng, plan, wall, width, depth, t, door_w, door_h)
    for a, b, z in pieces:
      o = np.array([*(start + a * along), z])
      surf.face(o, np.array([*((b - a) * along), 0]), np.array([0, 0, height - z]), WALL, inst,
                wall_col)


def _door(surf, rng, plan, wall, width, depth, t, door_w, door_h):
  start, along, inward, _ = _wall_frame(wall, width, depth)
  inst, col = surf.new_instance(), _colour(rng, DOOR)
  yaw = np.arctan2(inward[1], inward[0]) - np.pi / 2  # local +y = inward
  mid = start + (t + door_w / 2) * along
  leaf = rng.uniform(0.02, 0.05)  # the leaf stands a little proud of the wall
  surf.box(np.array([*(mid + inward * leaf / 2), door_h / 2]), (door_w, leaf, door_h), yaw,
           DOOR, inst, col, skip=('bottom', 'back'))
  frame = 0.05  # casing around the opening
  for s in (-1, 1):
    p = mid + along * s * (door_w / 2 + frame / 2) + inward * 0.015
    surf.box(np.array([*p, door_h / 2]), (frame, 0.03, door_h), yaw, DOOR, inst, col * 0.85,
             skip=('bottom', 'back'))
  surf.box(np.array([*(mid + inward * 0.015), door_h + frame / 2]),
           (door_w + 2 * frame, 0.03, frame), yaw, DOOR, inst, col * 0.85, skip=('back',))
  # Keep the door's swing area clear of furniture.
  corners = np.array([mid + along * s * door_w / 2 + inward * k for s in (-1, 1) for k in (0, 1)])
  plan.boxes.append((*corners.min(0), *corners.max(0)))


def _against_wall(rng, plan, w, d, tries=30):
  """(centre, yaw) of a w x d footprint standing with its back to a random wall, or None."""
  for _ in range(tries):
    start, along, inward, length = _wall_frame(int(rng.integers(4)), plan.width, plan.depth)
    if length < w + 0.1:
      continue
    c = start + along * rng.uniform(w / 2 + 0.05, length - w / 2 - 0.05) + inward * (d / 2 + 0.02)
    yaw = np.arctan2(inward[1], inward[0]) - np.pi / 2
    if plan.try_add(plan.footprint(*c, w, d, yaw)):
      return c, yaw
  return None


def _free_spot(rng, plan, w, d, yaw, tries=60, margin=0.2):
  for _ in range(tries):
    c = np.array([rng.uniform(0, plan.width), rng.uniform(0, plan.depth)])
    if plan.try_add(plan.footprint(*c, w, d, yaw), margin=margin):
      return c
  return None


def _table_group(surf, rng, plan):
  w, d = rng.uniform(0.9, 1.8), rng.uniform(0.6, 1.0)
  yaw = rng.integers(2) * np.pi / 2 + rng.normal(0, 0.1)
  c = _free_spot(rng, plan, w + 0.8, d + 0.8, yaw, margin=0.0)  # room for the chairs
  if c is None:
    return
  plan.boxes[-1] = plan.footprint(*c, w, d, yaw)
  table_box = len(plan.boxes) - 1
  h = _table(surf, rng, c, yaw, w, d)
  sides = [(0, 1, w), (0, -1, w), (1, 0, d), (-1, 0, d)]
  for sx, sy, side_len in sides:
    n = int(rng.integers(0, 3 if side_len > 1.1 else 2))
    for k in range(n):
      along = (k + 0.5) / n - 0.5
      tuck = rng.uniform(0.0, 0.15)
      local = (sx * (w / 2 + 0.25 - tuck) + (sy != 0) * along * side_len * 0.8,
               sy * (d / 2 + 0.25 - tuck) + (sx != 0) * along * side_len * 0.8)
      cc = c + _rotate(local, yaw)
      # Face the table: the chair's front (+y) points from the chair to the table centre.
      to_table = c - cc
      cyaw = np.arctan2(to_table[1], to_table[0]) - np.pi / 2 + rng.normal(0, 0.15)
      if plan.try_add(plan.footprint(*cc, 0.45, 0.45, cyaw), margin=0.02, ignore=(table_box,)):
        _chair(surf, rng, cc, cyaw)
  for _ in range(rng.integers(0, 3)):  # things on the table
    xy = c + _rotate((rng.uniform(-w / 2 + 0.15, w / 2 - 0.15),
                      rng.uniform(-d / 2 + 0.15, d / 2 - 0.15)), yaw)
    _clutter(surf, rng, xy, h, max_size=0.25)


def make_room(seed: int, num_points: int = 20000, noise: float = 0.005) -> dict:
  """One synthetic room as a scene dict (xyz in metres, z up, floor at 0; rgb features)."""
  rng = np.random.default_rng(seed)
  width, depth, height = rng.uniform(3.5, 7.0), rng.uniform(3.5, 7.0), rng.uniform(2.5, 3.0)
  surf, plan = _Surfaces(), _Floorplan(width, depth)
  surf.face(np.zeros(3), np.array([width, 0, 0]), np.array([0, depth, 0]), FLOOR,
            surf.new_instance(), _colour(rng, FLOOR))
  _walls_and_door(surf, rng, plan, width, depth, height)

  # The room's type decides its furniture (as in ScanNet, where a bed is in bedrooms only), so
  # a few labeled rooms miss whole kinds of rooms and many objects: the labels are the bottleneck.
  # Wall-standing furniture, more of it in larger rooms: (builder, count, width range, depth range).
  area = width * depth
  big = int(area > 25)
  kind = ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]
  counts = {
      'bedroom': dict(bed=1, sofa=0, bookshelf=int(rng.random() < 0.3), cabinet=rng.integers(1, 3 + big), tables=int(rng.random() < 0.3)),
      'living': dict(bed=0, sofa=1 + int(big and rng.random() < 0.5), bookshelf=rng.integers(0, 2 + big), cabinet=rng.integers(0, 2), tables=1),
      'office': dict(bed=0, sofa=int(rng.random() < 0.2), bookshelf=rng.integers(0, 2), cabinet=rng.integers(1, 3 + big), tables=rng.integers(1, 3 + big)),
      'storage': dict(bed=0, sofa=0, bookshelf=rng.integers(2, 4 + big), cabinet=rng.integers(2, 4 + big), tables=int(rng.random() < 0.5)),
  }[kind]
  wall_items = [(_bed, counts['bed'], (1.0, 1.8), (1.9, 2.1)),
                (_sofa, counts['sofa'], (1.6, 2.4), (0.8, 1.0)),
                (_bookshelf, counts['bookshelf'], (0.8, 1.2), (0.3, 0.4)),
                (_cabinet, counts['cabinet'], (0.4, 1.2), (0.4, 0.6))]
  for builder, count, w_range, d_range in wall_items:
    for _ in range(count):
      w, d = rng.uniform(*w_range), rng.uniform(*d_range)
      spot = _against_wall(rng, plan, w, d)
      if spot is None:
        continue
      top = builder(surf, rng, *spot, w, d)
      if builder is _cabinet and rng.random() < 0.5:  # something on the cabinet
        _clutter(surf, rng, spot[0], top, max_size=0.25)

  for _ in range(counts['tables']):
    _table_group(surf, rng, plan)
  for _ in range(rng.integers(1, 3)):  # a free-standing chair
    yaw = rng.uniform(0, 2 * np.pi)
    c = _free_spot(rng, plan, 0.45, 0.45, yaw)
    if c is not None:
      _chair(surf, rng, c, yaw)
  for _ in range(rng.integers(2, 7)):
    size = rng.uniform(0.15, 0.45)
    c = _free_spot(rng, plan, size, size, 0.0)
    if c is not None:
      _clutter(surf, rng, c, 0.0, max_size=size)

  xyz, rgb, semantic, instance = surf.sample(rng, num_points, noise)
  return common.make_scene(scene_id(seed), xyz, rgb, semantic,
                           common.consecutive_instances(instance))


def scene_id(seed: int) -> str:
  return f'room_{int(seed):06d}'


def scene_seed(sid: str) -> int:
  if not sid.startswith('room_') or not sid[5:].isdigit():
    raise ValueError(f'not a synthetic room id (want "room_NNNNNN"): {sid!r}')
  return int(sid[5:])


def read_scene(sid: str, num_points: int = 20000) -> dict:
  """The room a scene id names (the reader interface of the other data sets)."""
  return make_room(scene_seed(sid), num_points)


def make_split_scene_ids(num_train: int, num_val: int, room_seed: int = 0) -> dict[str, list[str]]:
  """{'train': [...], 'validation': [...]}; growing one split never changes the other. Rooms
  start at seed ``room_seed`` (validation at VAL_SEED_OFFSET + room_seed), so a run on another
  offset sees rooms that no earlier choice was tuned on."""
  if not 0 <= room_seed < VAL_SEED_OFFSET - num_train:
    raise ValueError(f'room_seed must be in [0, {VAL_SEED_OFFSET - num_train}), got {room_seed}')
  return {'train': [scene_id(room_seed + i) for i in range(num_train)],
          'validation': [scene_id(VAL_SEED_OFFSET + room_seed + i) for i in range(num_val)]}
