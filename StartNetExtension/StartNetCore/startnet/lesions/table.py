"""The lesion register as tables: lesions.json / lesions.csv, a cycle's record, the trial tracker's summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from startnet.errors import OutputError

CSV_COLUMNS = ("lesion", "cycle", "segment", "status", "volume_ml", "volume_change_pct", "mean_gy", "bed_gy",
               "d50_gy", "d98_gy", "cumulative_mean_gy", "cumulative_bed_gy")


def lesion_rows(register: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One row per lesion and cycle of the register (a "not seen" row where the lesion was not found)."""
    numbers = [c["cycle"] for c in register["cycles"]]
    rows = []
    for lesion in register["lesions"]:
        by_cycle = {r["cycle"]: r for r in lesion["cycles"]}
        dose = bed = 0.0
        for number in numbers:
            if number < lesion["first_cycle"]:
                continue
            r = by_cycle.get(number)
            if r is None:
                rows.append({"lesion": lesion["id"], "cycle": number, "segment": None, "status": "not seen",
                             "cumulative_mean_gy": round(dose, 4), "cumulative_bed_gy": round(bed, 4)})
                continue
            dose += r.get("mean_gy") or 0.0
            bed += r.get("bed_gy") or 0.0
            rows.append({"lesion": lesion["id"], "cycle": number, "segment": r["segment"],
                         "status": "new" if number == lesion["first_cycle"] else "seen",
                         **{k: r.get(k) for k in ("volume_ml", "volume_change_pct", "mean_gy", "bed_gy",
                                                  "d50_gy", "d98_gy")},
                         "cumulative_mean_gy": round(dose, 4), "cumulative_bed_gy": round(bed, 4)})
    return rows


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in CSV_COLUMNS})
    return stream.getvalue()


def write_lesion_files(register: Mapping[str, Any], out_dir) -> Dict[str, str]:
    """lesions.json (the whole register) and lesions.csv (:func:`lesion_rows`) in ``out_dir``."""
    out = Path(out_dir)
    try:
        (out / "lesions.json").write_text(json.dumps(register, indent=2))
        (out / "lesions.csv").write_text(csv_text(lesion_rows(register)))
    except OSError as exc:
        raise OutputError(f"{out}: cannot write lesions.json/lesions.csv ({exc.strerror or exc})") from None
    return {"lesions.json": str(out / "lesions.json"), "lesions.csv": str(out / "lesions.csv")}


def cycle_record(register: Mapping[str, Any], cycle: int) -> Dict[str, Any]:
    """What results.json (and so the trial database) keeps of one cycle: IDs, matches, per-lesion values."""
    entry = next(c for c in register["cycles"] if c["cycle"] == cycle)
    per_lesion = []
    for lesion in register["lesions"]:
        row = next((r for r in lesion["cycles"] if r["cycle"] == cycle), None)
        if row is not None:
            per_lesion.append({"id": lesion["id"], **{k: v for k, v in row.items() if k != "cycle"}})
    return {"rule": register["rule"], "segments": entry["segments"], "new": entry["new"],
            "not_seen": entry["not_seen"], "matches": entry["matches"], "per_lesion": per_lesion}


def trial_lesion_summary(cycles: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Per lesion over a patient's recorded cycles: dose and volume per cycle, cumulative dose and BED.

    ``cycles`` are the trial database's cycle records; each cycle's lesions are in its stored
    dosimetry provenance (``dosimetry["lesions"]``, written by ``startnet run --trial-db``). Cycles
    recorded without lesions are listed in ``cycles_without_lesions`` of each lesion.
    """
    out: Dict[str, Dict[str, Any]] = {}
    numbers = [c["cycle"] for c in cycles]
    without = [c["cycle"] for c in cycles if _lesions_of(c) is None]
    for c in cycles:
        record = _lesions_of(c)
        if record is None:
            continue
        for row in record.get("per_lesion") or []:
            lesion = out.setdefault(row["id"], {"id": row["id"], "first_cycle": c["cycle"], "per_cycle": [],
                                                "cumulative_mean_gy": 0.0, "cumulative_bed_gy": 0.0})
            lesion["per_cycle"].append({"cycle": c["cycle"], "segment": row.get("segment"),
                                        "mean_gy": row.get("mean_gy"), "bed_gy": row.get("bed_gy"),
                                        "volume_ml": row.get("volume_ml"), "d50_gy": row.get("d50_gy"),
                                        "d98_gy": row.get("d98_gy")})
            for key, total in (("mean_gy", "cumulative_mean_gy"), ("bed_gy", "cumulative_bed_gy")):
                value = row.get(key)
                lesion[total] = None if value is None or lesion[total] is None else round(lesion[total] + value, 4)
    for lesion in out.values():
        seen = [r["cycle"] for r in lesion["per_cycle"]]
        lesion["not_seen_in"] = [n for n in numbers if n > lesion["first_cycle"] and n not in seen
                                 and n not in without]
        lesion["cycles_without_lesions"] = without
        with_lesions = [n for n in numbers if n not in without]
        lesion["status"] = _status(lesion, with_lesions[-1] if with_lesions else None)
    return [out[k] for k in out]


def _status(lesion: Mapping[str, Any], last: Optional[int]) -> str:
    seen = [r["cycle"] for r in lesion["per_cycle"]]
    if last is None or last in seen:
        return "new" if lesion["first_cycle"] == last else "seen"
    return "not seen"


def _lesions_of(cycle: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    dosimetry = cycle.get("dosimetry") or {}
    lesions = dosimetry.get("lesions") if isinstance(dosimetry, dict) else None
    return lesions if isinstance(lesions, dict) else None
