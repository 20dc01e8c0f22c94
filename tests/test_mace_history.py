"""A mace run's history across a resume: patience over the kept history, and the best checkpoint survives.

The rows and checkpoint moves below are those of mace 0.3.16 (read from its train.py and checkpoint.py and seen on
GOHomS-mini v2 L): a resumed process logs an initial evaluation, labels its first epoch with the checkpoint's
epoch again, forgets its best loss, and saves (over or beside) the checkpoint it loaded.
"""

import json
import sys
import textwrap

import pytest

from mo_transfer import mace_history as H
from mo_transfer import training as T


def _eval(epoch, loss):
    return {"mode": "eval", "epoch": epoch, "loss": loss, "mae_e_per_atom": loss, "mae_f": loss, "time": 1.0}


def _opt(epoch):
    return {"mode": "opt", "epoch": epoch, "loss": 0.0, "time": 10.0}


FIRST = [4.0, 2.0, 1.5, 1.2, 1.0, 1.1, 1.3, 1.2]  # best at epoch 4, killed after epoch 7
RESUMED = [1.4, 1.3, 1.25, 1.2, 1.15, 1.1]  # from the epoch-4 checkpoint; never beats 1.0


def _killed_and_resumed() -> list[dict]:
    rows = [_eval(None, 9.0)]
    for e, loss in enumerate(FIRST):
        rows += [_opt(e), _eval(e, loss)]
    rows.append(_eval(None, 1.0))  # the resumed process evaluates the checkpoint it loaded
    for k, loss in enumerate(RESUMED):
        rows += [_opt(4 + k), _eval(4 + k, loss)]  # its first epoch is labelled 4 again
    return rows


def test_history_keeps_the_rows_up_to_the_loaded_checkpoint():
    rows = _killed_and_resumed()
    curve = H.validation_curve(rows)
    assert [r["loss"] for r in curve] == FIRST[:5] + RESUMED  # epochs 5-7 of the killed process were thrown away
    assert [r["epoch"] for r in curve] == list(range(11))
    assert [r["raw_epoch"] for r in curve] == [0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9]
    assert H.epochs_since_best(rows) == 6  # the naive count over the file would say 9
    s = H.summarize_results(rows)
    assert s["best_epoch"] == 4 and s["epochs"] == 11 and s["seconds_per_epoch"] == 11.0
    lc = H.learning_curve_rows(rows)
    assert [r["epoch"] for r in lc] == list(range(12)) and lc[0]["loss"] == 9.0


def test_a_process_killed_before_its_first_epoch_changes_nothing():
    rows = _killed_and_resumed()
    cut = rows.index(_eval(None, 1.0))
    doubled = rows[:cut] + [_eval(None, 1.0), _opt(4)] + rows[cut:]  # a resume killed inside its first epoch
    assert H.validation_curve(doubled) == H.validation_curve(rows)
    # the record names the one resume that trained (at the checkpoint's epoch), not the one killed before it did
    assert H.resumed_epochs(doubled) == H.resumed_epochs(rows) == [4]
    assert H.resumed_epochs(rows[:rows.index(_eval(None, 1.0))]) == []


def test_the_preserved_checkpoint_is_put_back_when_the_resume_never_beat_it(tmp_path):
    tag = "m_run-42"
    (tmp_path / f"{tag}_epoch-4.pt").write_text("best of the first process")
    before = _killed_and_resumed()[:1 + 2 * len(FIRST)]
    kept = H.preserve_checkpoint(tmp_path, tag, before)
    assert kept == {"file": f"{tag}_epoch-4.pt", "epoch": 4, "loss": 1.0}
    # what mace then does: saves its first epoch over the loaded file, then moves on to a later one
    (tmp_path / f"{tag}_epoch-4.pt").unlink()
    (tmp_path / f"{tag}_epoch-9.pt").write_text("best of the resumed process")
    rows = _killed_and_resumed()
    assert H.delivered_epoch(tmp_path, tag, rows) == 10
    assert H.restore_best_checkpoint(tmp_path, tag, rows)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [f"{tag}_epoch-4.pt"]
    assert (tmp_path / f"{tag}_epoch-4.pt").read_text() == "best of the first process"
    assert H.delivered_epoch(tmp_path, tag, rows) == 4
    assert not H.restore_best_checkpoint(tmp_path, tag, rows)  # already the latest


def test_a_better_resumed_checkpoint_is_kept(tmp_path):
    tag = "m_run-42"
    (tmp_path / f"{tag}_epoch-4.pt").write_text("first")
    H.preserve_checkpoint(tmp_path, tag, _killed_and_resumed()[:1 + 2 * len(FIRST)])
    rows = _killed_and_resumed() + [_opt(10), _eval(10, 0.5)]
    (tmp_path / f"{tag}_epoch-4.pt").unlink()
    (tmp_path / f"{tag}_epoch-10.pt").write_text("better")
    assert not H.restore_best_checkpoint(tmp_path, tag, rows)
    assert (tmp_path / f"{tag}_epoch-10.pt").read_text() == "better"
    assert H.preserve_checkpoint(tmp_path, tag, rows)["loss"] == 0.5  # the next resume keeps the better one


FAKE_MACE = textwrap.dedent('''
    """mace_run_train's checkpoint and results behaviour (0.3.16), with losses from a file: LOSSES[process][k]."""
    import json, os, re, sys, time
    a = dict(x.split("=", 1) for x in sys.argv[1:] if "=" in x)
    work, tag = a["--work_dir"], f"{a['--name']}_run-{a['--seed']}"
    ck, res = os.path.join(work, "checkpoints"), os.path.join(work, "results")
    os.makedirs(ck, exist_ok=True), os.makedirs(res, exist_ok=True)
    losses = json.load(open(os.environ["FAKE_LOSSES"]))
    proc = len([l for l in open(os.environ["FAKE_LOSSES"] + ".calls")]) if os.path.exists(
        os.environ["FAKE_LOSSES"] + ".calls") else 0
    open(os.environ["FAKE_LOSSES"] + ".calls", "a").write("x\\n")
    found = {int(m.group(1)): f for f in os.listdir(ck) if (m := re.match(re.escape(tag) + r"_epoch-(\\d+)\\.pt$", f))}
    start, state = (max(found), open(os.path.join(ck, found[max(found)])).read()) if found else (0, "random")
    out = open(os.path.join(res, f"{tag}_train.txt"), "a")
    def log(row):
        out.write(json.dumps(row) + "\\n"); out.flush()
    log({"mode": "eval", "epoch": None, "loss": 99.0})
    lowest, old, epoch = float("inf"), None, start
    series = losses[min(proc, len(losses) - 1)] if int(a["--max_num_epochs"]) else []
    for loss in series:
        time.sleep(0.15)
        state = f"process {proc} epoch {epoch}"
        log({"mode": "opt", "epoch": epoch, "loss": 0.0, "time": 0.1})
        log({"mode": "eval", "epoch": epoch, "loss": loss, "mae_e_per_atom": loss, "mae_f": loss, "time": 0.01})
        if loss < lowest:
            lowest = loss
            if old:
                os.remove(old)
            old = os.path.join(ck, f"{tag}_epoch-{epoch}.pt")
            open(old, "w").write(state)
        epoch += 1
        if os.environ.get("FAKE_DIE_AFTER") and epoch - start >= int(os.environ["FAKE_DIE_AFTER"]):
            sys.exit(3)
    found = {int(m.group(1)): f for f in os.listdir(ck) if (m := re.match(re.escape(tag) + r"_epoch-(\\d+)\\.pt$", f))}
    open(os.path.join(work, a["--name"] + ".model"), "w").write(open(os.path.join(ck, found[max(found)])).read())
''')


def test_run_mace_train_delivers_the_best_model_of_a_killed_and_resumed_run(tmp_path, monkeypatch):
    fake = tmp_path / "fake_mace.py"
    fake.write_text(FAKE_MACE)
    losses = tmp_path / "losses.json"
    losses.write_text(json.dumps([FIRST, [1.4, 1.3, 1.25, 1.2, 1.15, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7]]))
    monkeypatch.setattr(T, "mace_run_train_command", lambda: [sys.executable, str(fake)])
    monkeypatch.setenv("FAKE_LOSSES", str(losses))
    args = ["--name=m", "--seed=42", f"--work_dir={tmp_path}", "--max_num_epochs=100", "--restart_latest"]
    monkeypatch.setenv("FAKE_DIE_AFTER", str(len(FIRST)))  # the session ends while the first process runs
    with pytest.raises(RuntimeError, match="exit code 3"):
        T.run_mace_train(args, tmp_path, "m", 42, 6, tmp_path / "train.log", poll_s=0.02)
    monkeypatch.delenv("FAKE_DIE_AFTER")
    s = T.run_mace_train(args, tmp_path, "m", 42, 6, tmp_path / "train.log", poll_s=0.02)
    assert s["stopped_early"] and s["best_checkpoint_restored"]
    assert s["best_epoch"] == 4 and s["delivered_epoch"] == 4
    assert (tmp_path / "m.model").read_text() == "process 0 epoch 4"  # not the resumed process's best (1.1)


def test_compute_seconds_counts_every_process_and_discarded_epoch():
    """A run killed after epoch 2 and resumed from its epoch-1 checkpoint: epoch 2 of the first process is
    discarded from the history but its time was spent; the finalisation's evaluation counts too."""
    from mo_transfer import mace_history

    rows = [{"mode": "eval", "epoch": None, "loss": 1.0, "time": 1.0},
            {"mode": "opt", "epoch": 0, "time": 10.0}, {"mode": "eval", "epoch": 0, "loss": 0.9, "time": 1.0},
            {"mode": "opt", "epoch": 1, "time": 10.0}, {"mode": "eval", "epoch": 1, "loss": 0.8, "time": 1.0},
            {"mode": "opt", "epoch": 2, "time": 10.0}, {"mode": "eval", "epoch": 2, "loss": 0.7, "time": 1.0},
            {"mode": "eval", "epoch": None, "loss": 0.8, "time": 1.0},  # the resumed process starts
            {"mode": "opt", "epoch": 1, "time": 10.0}, {"mode": "eval", "epoch": 1, "loss": 0.75, "time": 1.0}]
    assert mace_history.compute_seconds(rows) == 46.0  # 4 x 10 s of training, 6 evaluations of 1 s
    assert len(mace_history.validation_curve(rows)) == 3  # epochs 0, 1 of the first process, then the resumed one
