"""Smoke test of the benchmark's --quick machinery on a tiny synthetic sweep (no real data)."""
import json
import pytest

from ws3d_jax.bench import sparse_conv


@pytest.mark.slow  # times every workload of the quick benchmark
def test_quick_synthetic_report(tmp_path):
  cfg = sparse_conv.Config.quick(synthetic=True, synthetic_size=(8, 256), channels=(8,), dense_max_channels=8,
                                 strided_channels=8, crop=(8, 8, 8), small_crop=(8, 8, 8), reps=2, peer_reps=2)
  out = tmp_path / 'report.json'
  sparse_conv.run(cfg, tmp_path, out, log=lambda *a: None)
  report = json.loads(out.read_text())
  by_name = {w['name']: w for w in report['workloads']}
  assert set(by_name) == {'subm_c8_pairs', 'subm_c8_dense', 'strided_c8', 'transposed_c8',
                          'minkunet14_synthetic_lidar_sweep'}
  for w in report['workloads']:
    assert w['status'] == 'ok', w
    assert w['forward']['median_ms'] > 0 and w['forward']['p90_ms'] >= w['forward']['median_ms']
    assert w['kernel_map_build']['median_ms'] > 0
    assert w['peak_rss_mb'] > 0
    assert all(n == 1 for n in w['compile_count'].values()), w['compile_count']  # no recompiles
  for impl in ('pairs', 'dense'):
    w = by_name[f'subm_c8_{impl}']
    assert w['forward_backward']['median_ms'] > 0 and w['useful_gflop']['forward'] > 0
    assert w['error']['max_abs_err_fwd'] < 1e-4 and 'crop' in w['error']['scope']
    peer = w['peer_torch']
    assert ('forward' in peer) or peer['status'] == 'unavailable'
  assert by_name['strided_c8']['error']['max_abs_err_fwd'] < 1e-4
  net = by_name['minkunet14_synthetic_lidar_sweep']
  assert net['useful_gflop']['forward'] > 0 and net['layers']['SubMConv3d']['count'] == 17
  peer = net['peer_torch']
  if peer.get('status') != 'unavailable':  # torch is an optional extra
    # the same network in PyTorch, loaded with our parameters, must give our logits
    assert peer['parity']['logits_max_abs_diff'] < 1e-4 * max(1.0, peer['parity']['logits_max_abs'])
    assert net['ratio_ours_over_peer']['forward'] > 0


def test_missing_data_skips_cleanly(tmp_path):
  cfg = sparse_conv.Config.quick(channels=(8,))
  report = sparse_conv.run(cfg, tmp_path / 'absent', None, log=lambda *a: None)
  assert report['workloads'] and all(w['status'] == 'skipped' and 'not found' in w['message']
                                     for w in report['workloads'])
