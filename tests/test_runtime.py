"""ws3d_jax.runtime: the process settings the entry points apply before jax starts."""
from ws3d_jax import runtime


def test_thp_mode_reads_the_bracketed_choice(tmp_path, monkeypatch):
  f = tmp_path / 'enabled'
  f.write_text('always [madvise] never\n')
  monkeypatch.setattr(runtime, '_THP_MODE', str(f))
  assert runtime._thp_mode() == 'madvise'
  f.write_text('[always] madvise never\n')
  assert runtime._thp_mode() == 'always'
  monkeypatch.setattr(runtime, '_THP_MODE', str(tmp_path / 'missing'))
  assert runtime._thp_mode() == 'never'


def test_reexec_only_once_and_never_over_a_users_tunable(monkeypatch):
  monkeypatch.setattr(runtime, '_thp_mode', lambda: 'madvise')
  monkeypatch.setattr(runtime, '_is_glibc', lambda: True)
  monkeypatch.delenv('WS3D_REEXECUTED', raising=False)
  monkeypatch.delenv('WS3D_NO_REEXEC', raising=False)
  monkeypatch.setenv('GLIBC_TUNABLES', '')
  assert runtime._should_reexec()
  monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.hugetlb=0')
  assert not runtime._should_reexec()
  monkeypatch.setenv('GLIBC_TUNABLES', '')
  monkeypatch.setenv('WS3D_REEXECUTED', '1')
  assert not runtime._should_reexec()
  monkeypatch.delenv('WS3D_REEXECUTED')
  monkeypatch.setattr(runtime, '_thp_mode', lambda: 'always')
  assert not runtime._should_reexec()
