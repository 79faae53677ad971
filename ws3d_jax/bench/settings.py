"""Settings of the sparse-convolution benchmark (``Config``, its ``--quick`` preset) and its workload groups."""
from __future__ import annotations

import dataclasses

GROUPS = ('layers', 'updown', 'profile', 'network', 'by_level')


@dataclasses.dataclass
class Config:
  channels: tuple = (32, 64, 128, 256)
  dataflows: tuple = ('pairs', 'dense')
  dense_max_channels: int = 1 << 30  # the 'dense' dataflow only up to this width (--quick: 32)
  strided_channels: int = 64
  warmup: int = 2
  reps: int = 10
  net_reps: int = 5
  build_reps: int = 5
  peer_reps: int = 7
  paired_rounds: int = 7  # interleaved ours/peer calls for the headline ratio (0: separate runs only)
  paired_pause_s: float = 0.1  # idle time before each interleaved call (untimed)
  paired_max_ms: float = 5000.0  # dataflows slower than this per fwd+bwd are not interleaved
  crop: tuple = (64, 64, 32)
  big_crop_channels: int = 256  # from this width on the error check uses small_crop
  small_crop: tuple = (32, 32, 32)
  network: str = 'minkunet34'
  network_dtype: str = 'float32'  # compute dtype of the network workloads ('bfloat16': bf16 matmuls, f32 params)
  train_step: bool = True
  network_peer: bool = True  # the same network in PyTorch eager, interleaved with ours
  by_level: bool = True
  scannet_network: bool = True
  check_grads: bool = True
  profile: bool = True  # step-by-step profile of the pairs layer per width
  xla_memory: bool = True  # XLA's memory analysis of each compiled layer (compiles it once more)
  layer_growth: float = 1.05  # capacity ladder for the single-layer workloads (tight padding)
  synthetic: bool = False
  only: tuple = GROUPS  # which workload groups run
  synthetic_size: tuple = (64, 2048)  # LiDAR beams x azimuth steps for --synthetic

  @classmethod
  def quick(cls, **kw):
    base = dict(channels=(32, 64), dense_max_channels=32, strided_channels=32, xla_memory=False, profile=False,
                warmup=1, reps=3, net_reps=2, build_reps=2, peer_reps=3, paired_rounds=3, crop=(32, 32, 16),
                small_crop=(32, 32, 16),
                network='minkunet14', train_step=False, by_level=False, scannet_network=False, check_grads=False)
    base.update(kw)
    return cls(**base)

  @property
  def chunk(self) -> int:
    """Pair-map chunk length of the single-layer 'pairs' workloads: the one the network's spec uses, so
    that a layer is timed as the network runs it."""
    from ws3d_jax.models import minkunet  # jax and flax: not before the CLI's re-exec
    return minkunet.backbone_spec(self.network).chunk
