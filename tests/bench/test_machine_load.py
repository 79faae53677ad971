"""The load record of a measurement: CPU time other processes took meanwhile is counted, this
process's own is not."""
import subprocess
import sys
import time

import pytest

from ws3d_jax.bench.machine_load import SHARED_CORES, MachineLoad

BUSY = 'import time\nt = time.time()\nwhile time.time() - t < 1.5: pass'


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc/stat')
def test_another_process_busy_during_the_run_is_counted_as_sharing():
  with MachineLoad() as load:
    other = subprocess.Popen([sys.executable, '-c', BUSY])  # not reaped before the end: not ours
    time.sleep(2.5)
  other.wait()
  record = load.record()
  assert record['other_cpu_seconds'] >= 1.0, record  # the busy loop's 1.5 s (and the interpreter's start)
  assert record['other_cores'] > SHARED_CORES and record['shared']
  assert record['wall_seconds'] >= 2.5 and len(record['load_average_start']) == 3


def test_own_work_is_not_counted_as_another_process():
  with MachineLoad() as load:
    t = time.process_time()
    while time.process_time() - t < 1.0:
      pass
  record = load.record()
  # Our own second of CPU is subtracted; what is left is other processes of the machine, which a
  # test cannot rule out, so only the bound holds: not more than the wall time of all cores.
  assert record['other_cpu_seconds'] <= record['wall_seconds'] * record['cpus']
  assert record['other_cpu_seconds'] < 0.8 * (record['wall_seconds'] * record['cpus'])
