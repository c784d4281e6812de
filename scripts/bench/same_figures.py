"""Compares djgc's JSON report with dj.gc's stats: every figure both give
(referenced, stored, orphaned, orphaned bytes) must be equal.

    python same_figures.py DJGC.json DJ_GC.json     # exit 1 when any differs
"""

import json
import sys

# The report is the last line (DataJoint prints its connection first).
djgc, dj_gc = (json.loads(open(path).read().splitlines()[-1]) for path in sys.argv[1:3])
shared = sorted(
    k for k in dj_gc if k in djgc and k.endswith(("referenced", "stored", "orphaned", "bytes"))
)
differ = [k for k in shared if djgc[k] != dj_gc[k]]
figures = ", ".join(f"{k}={dj_gc[k]}" for k in shared)
print(f"same figures as dj.gc: {'yes' if not differ else 'NO'} ({figures})")
for k in differ:
    print(f"  {k}: djgc {djgc[k]}, dj.gc {dj_gc[k]}")
sys.exit(1 if differ or not shared else 0)
