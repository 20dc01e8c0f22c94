"""What notebook 3's opening (and the README) print from a cached prior study: how each GOHomS-mini generation
scores zero-shot beside the baselines, and whether v2 is a better prior than v1, as paired differences on
identical frames. Reads results; computes no model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .engine import stats
from .engine.tables import METRIC_UNITS, error_table, errors_of
from .foundation_models import GOH_MINI_GENERATIONS, GOH_MINI_SCALES, SCALE_TO_GOH_MINI, goh_mini_path
from .prior_study import label, pretraining_record

__all__ = ["error_table", "pretraining_table", "generation_differences", "summary_markdown"]


def pretraining_table(result: dict, models_dir: Path | None = None) -> pd.DataFrame:
    """One line per generation and scale: pretraining frames, E0 rule, epochs (best, cap, early stop) and the
    held-out test errors the model's provenance records. The models the study scored come from the cache; every
    other committed GOHomS-mini of those generations (L, which the cpu studies do not use) from its provenance
    file, marked as not scored here."""
    lines, seen = [], set()
    for gen, by_scale in result["pretraining"].items():
        for scale, rec in by_scale.items():
            seen.add((gen, SCALE_TO_GOH_MINI.get(scale, scale)))
            lines.append({"generation": gen, "scale": scale, **{k: v for k, v in rec.items() if k != "model"},
                          "model": rec.get("model"), "scored zero-shot here": True})
    real = [g for g in GOH_MINI_GENERATIONS  # generations the cache scored as committed models (smoke: none)
            if any("note" not in rec for rec in result["pretraining"].get(g, {}).values())]
    for gen in real:
        for short, scale in GOH_MINI_SCALES.items():
            path = goh_mini_path(short, models_dir, generation=gen)
            if (gen, short) not in seen and path.is_file():
                rec = pretraining_record(path)
                lines.append({"generation": gen, "scale": scale, **{k: v for k, v in rec.items() if k != "model"},
                              "model": rec.get("model"), "scored zero-shot here": False})
    return pd.DataFrame(lines)


def generation_differences(result: dict, new: str = "v2", old: str = "v1") -> pd.DataFrame:
    """``new`` - ``old`` per experiment, scale and metric on the frames both were tested on (all of them): energy
    MAE raw and refit, force MAE (a refit moves energies only); verdict "holds" when ``new`` is lower with a 95%
    interval excluding zero. Empty when either generation is missing."""
    if new not in result["generations"] or old not in result["generations"]:
        return pd.DataFrame(columns=["experiment", "scale", "metric", old, new, f"{new} - {old} [95% CI]",
                                     "structures", f"{new} better"])
    lines = []
    for exp in result["experiments"]:
        for scale in result["scales"]:
            for metric, refit in (("energy_mae", False), ("energy_mae", True), ("force_mae", False)):
                a = errors_of(result, exp, label(new, scale, refit))
                b = errors_of(result, exp, label(old, scale, refit))
                diff = stats.paired_difference(a, b, metric)
                lines.append({"experiment": exp, "scale": scale,
                              "metric": f"{metric}{' (refit)' if refit else ''} ({METRIC_UNITS[metric]})",
                              old: round(stats.metric_value(b, metric), 1), new: round(stats.metric_value(a, metric), 1),
                              f"{new} - {old} [95% CI]": diff.text(1), "structures": diff.n_groups,
                              f"{new} better": stats.verdict(diff, expect="negative")})
    return pd.DataFrame(lines)


def summary_markdown(result: dict, new: str = "v2", old: str = "v1") -> str:
    """Plain sentences: is ``new`` a better prior than ``old``, by how much, and how sure; or why it cannot say."""
    if new not in result["generations"]:
        why = result.get("missing", {}).get(new, "not in this result")
        return (f"GOHomS-mini {new} is not available yet ({why}), so this section shows {old} alone: whether "
                f"{new} is the better prior is not resolved.")
    table = generation_differences(result, new, old)
    parts = []
    for _, r in table.iterrows():
        parts.append(f"{r['experiment']} {r['scale']}, {r['metric']}: {r[old]} → {r[new]} "
                     f"(difference {r[f'{new} - {old} [95% CI]']}: **{r[f'{new} better']}**)")
    tally = stats.tally(table[f"{new} better"])
    head = (f"Is {new} a better prior than {old}? Of {len(table)} paired comparisons on identical frames, "
            f"{new} is better in {tally.get('holds', 0)}, worse in {tally.get('fails', 0)}, and not resolved in "
            f"{tally.get('not resolved', 0)} (intervals over structures).")
    return head + "\n\n" + "\n".join(f"- {p}" for p in parts)
