"""The scenes the benchmarks run on.

* ``read_kitti`` / ``read_scannet``: one SemanticKITTI scan and one ScanNet scene of the shared data
  samples (``../shared/data`` beside the repository, see its README.md), read the same way for every
  benchmark (sparse_conv, cluster, preprocess). Each returns None where the points file is absent,
  so that each benchmark decides how to skip.
* ``Scene``, ``kitti_scene``, ``scannet_scene``, ``synthetic_scenes``: the sparse-convolution
  benchmark's input, a point cloud with its input features, voxel size and class count.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ws3d_jax.data import scannet, semantickitti
from ws3d_jax.data.labels import load_semantickitti_maps

DEFAULT_DATA = (Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data').resolve()
KITTI_SCAN = '00_000000'
SCANNET_SCENE = 'scene0000_00'
SCANNET_DIR = Path('scannet') / 'scannet_instance_data'


@dataclasses.dataclass(frozen=True)
class Sample:
  """One scan or scene of the data samples; labels are training ids (IGNORE_LABEL where none)."""
  name: str  # 'semantickitti_00_000000', 'scannet_scene0000_00'
  path: Path  # its points file
  xyz: np.ndarray  # (N, 3) float32, metres
  appearance: np.ndarray  # float32; SemanticKITTI: (N,) remission 0..1, ScanNet: (N, 3) RGB 0..255
  semantic: np.ndarray | None = None  # (N,) int32, None when read without labels
  instance: np.ndarray | None = None  # (N,) int32 1..K, 0 = none


def kitti_path(data_root: str | os.PathLike, scan: str = KITTI_SCAN) -> Path:
  """The velodyne .bin of a sample scan ('00_000000' -> semantickitti/sequences/00/velodyne/000000.bin)."""
  return semantickitti.scan_paths(Path(data_root) / 'semantickitti', scan)[0]


def scannet_path(data_root: str | os.PathLike, scene: str = SCANNET_SCENE) -> Path:
  """The vertex file of a sample scene (scannet/scannet_instance_data/<scene>_vert.npy)."""
  return Path(data_root) / SCANNET_DIR / f'{scene}_vert.npy'


def read_kitti(data_root: str | os.PathLike, scan: str = KITTI_SCAN, labels: bool = True) -> Sample | None:
  """A SemanticKITTI sample scan, its labels mapped with the sample's own semantic-kitti.yaml."""
  root = Path(data_root) / 'semantickitti'
  bin_path, label_path = semantickitti.scan_paths(root, scan)
  if not bin_path.is_file():
    return None
  points = semantickitti.read_points(bin_path)
  semantic = instance = None
  if labels:
    learning_map, _ = load_semantickitti_maps(root / 'semantic-kitti.yaml')
    semantic, instance = semantickitti.read_labels(label_path, len(points), learning_map)
    semantic = semantic.astype(np.int32)
  return Sample(f'semantickitti_{scan}', bin_path, np.ascontiguousarray(points[:, :3]),
                np.ascontiguousarray(points[:, 3], np.float32), semantic, instance)


def read_scannet(data_root: str | os.PathLike, scene: str = SCANNET_SCENE, labels: bool = True) -> Sample | None:
  """A ScanNet sample scene of the preprocessed .npy layout, NYU40 ids mapped to the 20 benchmark classes."""
  vert_path = scannet_path(data_root, scene)
  if not vert_path.is_file():
    return None
  vert = np.load(vert_path)
  semantic = instance = None
  if labels:
    # The data package's reader checks the files and maps the labels; its features are RGB / 255, so
    # the RGB as stored (0..255) comes from the vertices read here.
    s = scannet.read_npy_scene(vert_path.parent, scene)
    semantic, instance = s['semantic'], s['instance']
  return Sample(f'scannet_{scene}', vert_path, np.ascontiguousarray(vert[:, :3], np.float32),
                np.ascontiguousarray(vert[:, 3:6], np.float32), semantic, instance)


# --- the sparse-convolution benchmark's scenes ----------------------------------------------------

@dataclasses.dataclass
class Scene:
  name: str
  xyz: np.ndarray
  feats: np.ndarray
  voxel_size: float
  num_classes: int
  source: str


def kitti_scene(data_root: str | os.PathLike) -> Scene | None:
  """The KITTI sample scan at 5 cm; input features x, y, z, remission, as the scan stores them."""
  s = read_kitti(data_root, labels=False)
  if s is None:
    return None
  return Scene(s.name, s.xyz, np.concatenate([s.xyz, s.appearance[:, None]], 1), 0.05, 19, str(s.path))


def scannet_scene(data_root: str | os.PathLike) -> Scene | None:
  """The ScanNet sample scene at 2 cm; input features RGB in 0..1."""
  s = read_scannet(data_root, labels=False)
  return None if s is None else Scene(s.name, s.xyz, s.appearance / 255.0, 0.02, 20, str(s.path))


def synthetic_scenes(size: tuple) -> tuple[Scene, Scene]:
  """A procedural LiDAR sweep of size = (beams, azimuth steps) and a room of half as many points."""
  from ws3d_jax.data import synthetic, synthetic_lidar
  beams, azimuth = size
  sweep = synthetic_lidar.make_sweep(0, num_beams=beams, num_azimuth=azimuth)
  feats = np.concatenate([sweep['xyz'], sweep['features']], axis=1)
  lidar = Scene('synthetic_lidar_sweep', sweep['xyz'], feats, 0.05, 19, 'synthetic_lidar.make_sweep(0)')
  room = synthetic.make_room(0, num_points=beams * azimuth // 2)
  indoor = Scene('synthetic_room', room['xyz'], room['features'][:, :3], 0.02, 20, 'synthetic.make_room(0)')
  return lidar, indoor
