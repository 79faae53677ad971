"""Fills docs/results.md section 0.2 from the label-efficiency benchmark's records
(docs/results/le/room0, the committed records of the FULL scale), with the summary rebuilt by the
current code:

    python scripts/le_results_tables.py      # from the repository root, after a benchmark run
"""
import dataclasses
import sys
from pathlib import Path
sys.path.insert(0, '.')
from ws3d_jax.bench import label_efficiency as le
settings = {'room_seed': 0, 'scale': dataclasses.asdict(le.FULL), 'metric': 'miou',
            'command': 'python -m ws3d_jax.bench.label_efficiency --out=runs/le_room0 --results=docs/results/le/room0 '
                       '--commit'}
runs = le.stored_records(Path('docs/results/le/room0'), settings)
data = {'settings': settings, 'runs': runs, 'summary': le.summarize(runs)}
report = le.markdown(data)
body = report.split('\n## ', 1)[1]
body = '#### ' + body.replace('\n## ', '\n#### ')
p = Path('docs/results.md')
s = p.read_text()
start = s.index('### 0.2 WS3D against sup_only (room seed 0)')
end = s.index('### 0.3 The boundary network')
intro = ('### 0.2 WS3D against sup_only (room seed 0)\n\n'
         "The benchmark's own tables (`le.markdown` of `runs/le_room0/report.json`, the committed records), "
         'as of the last finished run. "WS3D wins" is the issue\'s rule: the mean gain at least 2 points '
         'and more than twice the larger of the two standard deviations, judged once both arms have the '
         'same seeds.\n\n')
s = s[:start] + intro + body.strip() + '\n\n' + s[end:]
p.write_text(s)
