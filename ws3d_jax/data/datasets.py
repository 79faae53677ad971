"""The data sets this project knows, in one table: the name a config gives, the label set its
classes and palettes are kept under (data/labels.py), the TFDS builder that turns its download
into array_record files (tfds_builders/), and what its download folder must hold."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataSet:
  name: str  # config data.name and the TFDS name
  label_set: str  # key of labels.CLASSES and labels.PALETTES
  builder: str  # module of its TFDS builder, imported on first build
  layout: str = ''  # what manual_dir must hold, in one line ('' for a generated data set)
  aliases: tuple = ()


DATASETS = {d.name: d for d in (
    DataSet('semantic_kitti', 'semantickitti', 'tfds_builders.semantic_kitti.semantic_kitti_dataset_builder',
            'sequences/<SS>/velodyne/<NNNNNN>.bin and sequences/<SS>/labels/<NNNNNN>.label',
            aliases=('semantickitti', 'kitti')),
    DataSet('scannet', 'scannet', 'tfds_builders.scannet.scannet_dataset_builder',
            'scans/<scene>/<scene>_vh_clean_2.ply with its .labels.ply, .0.010000.segs.json and '
            '.aggregation.json (or scannet_instance_data/<scene>_vert.npy)', aliases=('scannet_v2', 'scannetv2')),
    DataSet('s3dis', 's3dis', 'tfds_builders.s3dis.s3dis_dataset_builder',
            'Area_<N>/<room>/Annotations/*.txt (Stanford3dDataset_v1.2_Aligned_Version)'),
    DataSet('synthetic', 'synthetic', 'tfds_builders.synthetic.synthetic_dataset_builder'),
)}
ALIASES = {alias: d.name for d in DATASETS.values() for alias in d.aliases}


def get(name: str) -> DataSet:
  """The data set of a config's data.name (or one of its aliases)."""
  canonical = ALIASES.get(name, name)
  if canonical not in DATASETS:
    raise ValueError(f'unknown data set {name!r}; one of {sorted(DATASETS)} (aliases: {ALIASES})')
  return DATASETS[canonical]


def canonical_name(name: str) -> str:
  return get(name).name
