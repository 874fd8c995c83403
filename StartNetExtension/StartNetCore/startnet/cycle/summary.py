"""One cycle's results as the short text ``startnet run``, ``startnet demo`` and the Dosimetry module print."""

from __future__ import annotations


def _num(value, fmt: str, missing: str = "n/a") -> str:
    """``value`` formatted, or ``missing`` where a step left it out (e.g. a BED that could not be computed)."""
    return missing if value is None else format(value, fmt)


def summary_text(results) -> str:
    from startnet.trial.planning import floor_activity_gbq, uncertainty_sentence

    lines = [f"cycle dosimetry ({results['method']}), injected {results['injected_activity_mbq'] / 1000:.2f} GBq, "
             f"{len(results['timepoints'])} time points"]
    for name, s in results["structures"].items():
        lines.append(f"  {name:<16} mean {_num(s['mean_gy'], '7.2f')} Gy +/- {_num(s['uncertainty_pct'], '4.1f')} %   "
                     f"BED {_num(s['bed_gy'], '7.2f')} Gy   TIA {_num(s['tia_mbq_h'], '10.1f')} MBq.h  "
                     f"({s['fit_model']})")
    if results.get("kidneys_mean_gy") is not None:
        lines.append(f"kidneys (mass-weighted): {results['kidneys_mean_gy']:.2f} Gy, "
                     f"BED {_num(results.get('kidneys_bed_gy'), '.2f')} Gy")
    trial = results.get("trial")
    if trial:
        nxt = trial["next_cycle"]
        lines.append(f"trial: cumulative kidney {trial['cumulative_kidney_gy']:.2f} of {trial['limit_gy']:.1f} Gy; "
                     f"next cycle {'allowed' if nxt['allowed'] else 'NOT allowed'}"
                     + (f", max {floor_activity_gbq(nxt['max_activity_gbq'], 2):.2f} GBq, {nxt['earliest_date']} .. "
                        f"{nxt['latest_date']}" if nxt["allowed"] else "") + f" ({nxt['reason']})")
        planning = uncertainty_sentence(nxt, trial["limit_gy"])
        if planning:
            lines.append(f"trial: {planning}")
    for warning in results.get("warnings", []):
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
