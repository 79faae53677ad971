"""ws3d_jax.progress.StepTimer: the rate and ETA the console shows, on a clock the test moves."""
import pytest

from ws3d_jax import progress


class Clock:
  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


@pytest.fixture
def clock(monkeypatch):
  c = Clock()
  monkeypatch.setattr(progress.time, 'monotonic', c)
  return c


def started(clock, total, last_step, seconds):
  """A timer that has read back steps 1 and ``last_step``, ``seconds`` apart: its first rate."""
  timer = progress.StepTimer('t', 0, total)
  timer.synced(1)
  clock.now += seconds
  timer.dispatched(last_step)
  timer.synced(last_step)
  return timer


def run_steps(timer, clock, first, last, seconds_per_step):
  """Steps first..last at a fixed speed, read back where the timer's resync is due (as fit does
  between its log steps)."""
  for step in range(first, last + 1):
    clock.now += seconds_per_step
    timer.dispatched(step)
    if timer.resync_due():
      timer.synced(step)


def test_rate_is_measured_between_read_backs(clock):
  timer = progress.StepTimer('t', 0, 100)
  assert timer.rate() is None
  timer.synced(1)
  clock.now += 2.0
  timer.dispatched(5)
  timer.synced(5)
  assert timer.rate() == pytest.approx(2.0)  # 4 steps in 2 s
  assert timer.eta() == 'ETA 48 s'  # 95 steps left at 2 steps/s


def test_resync_keeps_the_rate_true_when_the_loop_slows_down(clock):
  # The first steps are fast (small buckets); the rest are 10x slower. Without a read back
  # between log steps the timer would keep the first rate for the whole loop.
  timer = started(clock, 1000, 2, 0.1)
  assert timer.rate() == pytest.approx(10.0)
  assert not timer.resync_due()
  run_steps(timer, clock, 3, 200, seconds_per_step=1.0)
  assert timer.rate() == pytest.approx(1.0, rel=0.05)
  assert 'ETA 13 min' == timer.eta()  # 800 steps left at 1 step/s


def test_a_compile_restarts_the_rate_without_dropping_it(clock):
  timer = started(clock, 100, 3, 1.0)
  assert timer.rate() == pytest.approx(2.0)
  timer.dispatched(4, compiled=True)
  clock.now += 30.0  # the compile
  timer.synced(4)
  assert timer.rate() == pytest.approx(2.0)  # the compile is not read as one slow step
  clock.now += 1.0
  timer.synced(8)
  assert timer.rate() == pytest.approx(4.0)


def test_resync_is_due_only_after_resync_s(clock):
  timer = progress.StepTimer('t', 0, 10)
  timer.synced(1)
  clock.now += progress.StepTimer.RESYNC_S - 0.5
  assert not timer.resync_due()
  clock.now += 1.0
  assert timer.resync_due()
