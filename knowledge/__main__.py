"""``python -m knowledge [PATH]``: validate guide files (same as ``daoban kb validate``)."""

import sys
from pathlib import Path

from knowledge.validate import check_guide

base, problems = check_guide(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
for p in problems:
    print(p)
print(f"{len(base.items)} items, {len(base.bundles)} bundles, {len(base.materials)} materials, "
      f"{len(problems)} problem(s)")
sys.exit(1 if problems else 0)
