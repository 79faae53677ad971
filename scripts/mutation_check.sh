#!/usr/bin/env bash
# Three hand-made mutations (docs/testing.md), each in a fresh clone of HEAD, each followed by the
# fast tier (or the tier named as the second argument: "all" for the whole suite):
#   energy_sign      the energy term enters the objective with the wrong sign
#   offset_order     the kernel map's 27 offsets enumerated z-major instead of x-major
#   restored_step    a resumed run says it is one step further than the checkpoint it read
#   no_exchange      the processes of a multi-host run plan their buckets alone (not in "all";
#                    run it with the tier tests/train/test_multihost.py)
# A mutation is caught when the tier fails. Prints one line per mutation; exit 1 if one survived.
#   bash scripts/mutation_check.sh [energy_sign|offset_order|restored_step|all] [fast|all|TEST_PATH]
#   bash scripts/mutation_check.sh no_exchange tests/train/test_multihost.py
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
which=${1:-all}
tier=${2:-fast}
case $tier in
  fast) marker=(-m "not slow") ;;
  all) marker=() ;;
  *) marker=("$tier") ;;
esac
work=$(mktemp -d)
# A clone beside the real one, so the tests that read ../shared/data find it.
parent=$(dirname "$repo")
survived=0

mutate() {  # name file old new
  "$repo/.venv/bin/python" - "$@" <<'PY'
import sys
name, path, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f'{name}: the text to mutate is not (once) in {path}; update scripts/mutation_check.sh')
open(path, 'w').write(text.replace(old, new))
PY
}

run() {  # name file old new
  local name=$1 clone="$parent/.mutation_$1"
  rm -rf "$clone" && git clone -q "$repo" "$clone" && ln -s "$repo/.venv" "$clone/.venv"
  (cd "$clone" && mutate "$@") || exit 2
  local log="$work/$name.log"
  # (a mismatch between processes can hang their collectives: give up after 15 minutes)
  (cd "$clone" && timeout 900 .venv/bin/python -m pytest "${marker[@]}" -q -p no:cacheprovider -x >"$log" 2>&1)
  local code=$?
  local failed; failed=$(grep -m3 '^FAILED' "$log" | sed 's/^FAILED //; s/ - .*//' | tr '\n' ' ')
  if [ $code -eq 1 ]; then
    echo "$name: caught by the $tier tier: $failed"
  elif [ $code -eq 0 ]; then
    echo "$name: SURVIVED the $tier tier ($(tail -1 "$log"))"; survived=1
  elif [ $code -eq 124 ]; then
    echo "$name: caught by $tier: no result within 15 minutes (hung)"
  else
    echo "$name: pytest ended with $code: $(tail -3 "$log")"; survived=1
  fi
  rm -rf "$clone"
}

if [ "$which" = all ] || [ "$which" = energy_sign ]; then
  run energy_sign ws3d_jax/losses/objective.py \
    "loss += unlabeled_weight * self.w_energy * terms['energy']" \
    "loss -= unlabeled_weight * self.w_energy * terms['energy']"
fi
if [ "$which" = all ] || [ "$which" = offset_order ]; then
  run offset_order ws3d_jax/sparse/kernel_map.py \
    "OFFSETS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)]," \
    "OFFSETS = np.array([(dx, dy, dz) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],"
fi
if [ "$which" = all ] || [ "$which" = restored_step ]; then
  run restored_step ws3d_jax/train/checkpoints.py \
    "' (it has no checksums: unverified)' if step in self.unverified else '')
      return restored, step" \
    "' (it has no checksums: unverified)' if step in self.unverified else '')
      return restored, step + 1"
fi
if [ "$which" = no_exchange ]; then
  run no_exchange ws3d_jax/data/pipeline.py \
    "    agree = None if share.processes == 1 else lambda counts: counts_of(exchange.max(step, flat_counts(counts)))" \
    "    agree = None"
fi
rm -rf "$work"
exit $survived
