"""The README's held-out errors of the committed GOHomS-mini models are those their provenance files record."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


HELD_OUT = (r"held-out test energy MAE ([\d.]+) / ([\d.]+) / ([\d.]+) meV/atom and force MAE ([\d.]+) / "
            r"([\d.]+) / ([\d.]+) meV/A on (\d+) frames")
#: How the README introduces each generation's sentence (v1 is the first held-out sentence, before any other).
GENERATION_PREFIX = {"v1": "", "v2": r"GOHomS-mini v2[^.]*?"}


@pytest.mark.parametrize("generation", sorted(GENERATION_PREFIX))
def test_readme_quotes_the_recorded_held_out_errors(generation):
    """For every generation whose S, M and L models are committed, the README quotes their recorded errors."""
    from mo_transfer import foundation as F

    docs = [F.provenance_path(F.goh_mini_path(s, generation=generation)) for s in "SML"]
    if not all(d.exists() for d in docs):
        pytest.skip(f"GOHomS-mini {generation} S, M and L are not all committed")
    text = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(GENERATION_PREFIX[generation] + HELD_OUT, text)
    assert m, f"README must quote the held-out errors of GOHomS-mini {generation} S / M / L"
    quoted = [float(v) for v in m.groups()]
    for k, doc in enumerate(docs):
        test = json.loads(doc.read_text())["held_out_metrics"]["test"]
        assert round(test["energy_mae_mev_per_atom"], 1) == quoted[k], doc.name
        assert round(test["force_mae_mev_per_ang"], 1) == quoted[3 + k], doc.name
        assert test["n_frames"] == int(quoted[6])


def test_readme_quotes_the_cached_prior_study():
    """The README's zero-shot numbers of every generation in data/results/cpu/prior.json (FT-E, S and M) are the
    cache's, and once v2 is in it, so are the v2 - v1 paired differences with their verdicts."""
    from mo_transfer import prior_report, prior_study
    from mo_transfer.engine import stats
    from mo_transfer.engine.tables import errors_of

    text = " ".join((ROOT / "README.md").read_text().split())
    result = json.loads((ROOT / "data" / "results" / "cpu" / "prior.json").read_text())["result"]

    def quoted(label: str, metric: str) -> str:
        errs = errors_of(result, "FT-E", label)
        return stats.bootstrap(errs, metric).text(1)

    n = len(errors_of(result, "FT-E", prior_study.label("v1", "small")).frame_ids)
    assert f"on the {n} FT-E structures" in text
    for gen in result["generations"]:
        for scale in ("small", "medium"):
            for refit in (False, True):
                assert quoted(prior_study.label(gen, scale, refit), "energy_mae") in text, (gen, scale, refit)
            force = stats.metric_value(errors_of(result, "FT-E", prior_study.label(gen, scale)), "force_mae")
            assert f"{force:.1f}" in text, (gen, scale)
    if "v2" in result["generations"]:
        diffs = prior_report.generation_differences(result)
        for _, row in diffs[diffs["experiment"] == "FT-E"].iterrows():
            assert row["v2 - v1 [95% CI]"] in text, (row["scale"], row["metric"])


def test_readme_quotes_the_cpu_profiles_estimates():
    """The README's profile table gives the cpu profile's IID and LODO core-hour estimates on the committed pools
    (57 relaxed of 300 frames), as iid_study and lodo_study compute them."""
    from mo_transfer import iid_study, lodo_study

    text = " ".join((ROOT / "README.md").read_text().split())
    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `cpu` |"))
    iid = iid_study.estimate_core_hours("cpu", 57, 300)["total"]
    lodo = lodo_study.estimate_core_hours("cpu", 57)["total"]
    assert f"estimated {iid:.1f} core-hours" in row and f"(estimated {lodo:.1f} core-hours)" in row
    assert "paper protocol runs on fold 0 only" in text


#: How the README introduces each study's measured cost, and how it counts the runs that reached the epoch cap.
COST_SENTENCES = {"iid": ("The committed `cpu` IID cache measured", "{capped} runs reached the 400-epoch cap"),
                  "lodo": ("The committed `cpu` LODO cache measured", "{capped} of them reached the 400-epoch cap"),
                  "unseen": ("The committed `cpu` unseen-element cache measured",
                             "{capped} of them reached the 400-epoch cap")}


@pytest.mark.parametrize("study", sorted(COST_SENTENCES))
def test_readme_quotes_the_measured_cost(study):
    """The README's measured training cost of a study (engine.tables.training_cost) and its count of capped runs
    are the committed cpu cache's, for every study whose cache is committed."""
    from mo_transfer.engine.tables import trained_runs, training_cost

    path = ROOT / "data" / "results" / "cpu" / f"{study}.json"
    if not path.exists():
        pytest.skip(f"data/results/cpu/{study}.json is not committed")
    result = json.loads(path.read_text())["result"]
    cost = training_cost(result)
    text = " ".join((ROOT / "README.md").read_text().split())
    intro, cap_text = COST_SENTENCES[study]
    backends = ", ".join(f"{name} {cost[key]:.2f}" for key, name in (("mace", "MACE"), ("chgnet", "CHGNet"))
                         if key in cost)  # a study that trains one backend names that one
    assert f"{intro} {cost['total']:.2f} core-hours of training over {cost['runs']} runs ({backends})" in text
    capped = sum(not t["converged"] for _, t in trained_runs(result).values())  # the runs training_cost counts
    assert cap_text.format(capped=capped) in text, (capped, cost["runs"])
