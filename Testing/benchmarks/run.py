"""``make bench``: runs every ``bench_*.py`` beside this file and prints one table of ratios.

Each benchmark module defines ``run(table)`` and calls ``table.add(...)`` for each measurement.
Numbers are measured side by side in this one run; nothing here passes or fails on wall-clock
time. Set ``STARTNET_BENCH_ONLY=name1,name2`` to run a subset (module names without ``bench_``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional


@dataclass
class Row:
    area: str
    measurement: str
    value: str
    ratio: Optional[float]
    target: str
    note: str


@dataclass
class BenchTable:
    rows: List[Row] = field(default_factory=list)
    area: str = ""

    def add(self, measurement: str, value: str, ratio: Optional[float] = None, target: str = "",
            note: str = "") -> None:
        self.rows.append(Row(self.area, measurement, value, ratio, target, note))
        ratio_text = "" if ratio is None else f"  ratio {ratio:.2f}"
        print(f"  [{self.area}] {measurement}: {value}{ratio_text}  {target}  {note}", flush=True)

    def render(self) -> str:
        headers = ["area", "measurement", "value", "ratio", "target", "note"]
        body = [[r.area, r.measurement, r.value, "" if r.ratio is None else f"{r.ratio:.2f}", r.target, r.note]
                for r in self.rows]
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(headers)]
        lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths)),
                 "-+-".join("-" * w for w in widths)]
        lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
        return "\n".join(lines)


def main() -> int:
    here = Path(__file__).resolve().parent
    only = {s.strip() for s in os.environ.get("STARTNET_BENCH_ONLY", "").split(",") if s.strip()}
    table = BenchTable()
    failures = 0
    for path in sorted(here.glob("bench_*.py")):
        name = path.stem[len("bench_"):]
        if only and name not in only:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        table.area = name
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            module.run(table)
        except Exception:  # noqa: BLE001 - report and continue with the other benchmarks
            failures += 1
            traceback.print_exc()
        print(f"   ({time.perf_counter() - start:.1f} s)", flush=True)
    print()
    print(table.render())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
