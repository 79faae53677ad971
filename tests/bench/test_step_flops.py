"""Useful FLOPs of the step, layer by layer: a hand count on a small network."""
from ws3d_jax.bench.step_flops import useful_forward_flops
from ws3d_jax.models.minkunet import BackboneSpec


def test_useful_forward_flops_match_a_hand_count_of_a_two_level_network():
  spec = BackboneSpec(blocks=(1, 1), planes=(4, 6), stem=2, impl=('pairs', 'pairs'))
  # 10 / 4 real voxels and 20 / 6 real side pairs at levels 0 / 1; 3 input features.
  hand = (2 * (10 + 20) * 3 * 2  # stem, submanifold 3 -> 2 at level 0
          + 2 * 10 * 2 * 2  # strided 2 -> 2: each of the 10 fine voxels to its parent
          + 2 * (4 + 6) * 2 * 4 + 2 * (4 + 6) * 4 * 4 + 2 * 4 * 2 * 4  # block at level 1: two convs, 1x1 residual
          + 2 * 10 * 4 * 6  # transposed 4 -> 6 onto the 10 fine voxels
          + 2 * (10 + 20) * 8 * 6 + 2 * (10 + 20) * 6 * 6 + 2 * 10 * 8 * 6  # block at level 0 on 6 + 2 skip channels
          + 2 * 10 * 6 * 5  # classifier
          + (2 * 10 * 2 * 2 + 2 * 10 * 2 * 2) + (2 * 4 * 4 * 4 + 2 * 4 * 4 * 2))  # projection heads of stages 0, 1
  assert hand == 8416
  assert useful_forward_flops(spec, (10, 4), (20, 6), 3, 5, embed_dim=2, contrast_stages=(0, 1)) == hand
  # No heads without contrast stages, and the count grows with the pairs only through the submanifold layers.
  no_heads = useful_forward_flops(spec, (10, 4), (20, 6), 3, 5)
  assert no_heads == hand - 352
  more_pairs = useful_forward_flops(spec, (10, 4), (21, 6), 3, 5)
  assert more_pairs - no_heads == 2 * (3 * 2 + 8 * 6 + 6 * 6)
