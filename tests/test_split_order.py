"""Split ids are stored in a seeded random order (not sorted), and the training set can be subsampled while the
validation and test sets stay (issue #25, item 6: before, ``split.train[:n]`` were the alphabetically first)."""

from __future__ import annotations

import pytest

from mo_transfer import splits as sp

#: Ids that sort by source file: an alphabetical prefix would take the bcc files only.
IDS = [f"{lat}-{k:03d}.extxyz:0" for lat in ("bcc", "fcc") for k in range(60)]


def test_ids_are_stored_shuffled_reproducibly_and_independent_of_input_order():
    split = sp.iid_split(IDS, seed=3)
    assert split.train != sorted(split.train) and split.test != sorted(split.test)
    assert split.to_dict() == sp.iid_split(IDS[::-1], seed=3).to_dict()  # input order does not matter
    assert split.train != sp.iid_split(IDS, seed=4).train
    first = split.train[:20]
    assert first != sorted(split.train)[:20]
    assert {i[:3] for i in first} == {"bcc", "fcc"}  # a random 20, not the alphabetical head
    for make in (lambda: sp.group_split([_frame(i) for i in IDS], seed=3),
                 lambda: sp.size_matched_split(IDS, 40, seed=3)):
        s = make()
        assert s.train != sorted(s.train)


def _frame(fid: str):
    from ase import Atoms

    src, k = fid.rsplit(":", 1)
    return Atoms("Mo", info={"source_file": src, "source_frame": int(k), "traj_id": src[:7]})


def test_subsample_train_keeps_valid_and_test_and_is_nested(tmp_path):
    split = sp.iid_split(IDS, seed=5)
    small, large = sp.subsample_train(split, 10), sp.subsample_train(split, 50)
    for sub in (small, large):
        assert sub.valid == split.valid and sub.test == split.test
        assert sub.pool_sha256 == split.pool_sha256 and set(sub.train) <= set(split.train)
    assert len(small.train) == 10 and set(small.train) <= set(large.train)
    assert small.params["train_subsample"] == 10 and small.params["train_available"] == len(split.train)
    assert {i[:3] for i in small.train} == {"bcc", "fcc"}
    back = sp.load_split(sp.save_split(small, tmp_path / "s.json"))  # order survives the file
    assert back.train == small.train and back.test == small.test
    assert sp.apply_split([_frame(i) for i in IDS], small)["test"][0].info["source_file"] == small.test[0][:-2]
    with pytest.raises(sp.SplitError, match="between 1 and"):
        sp.subsample_train(split, len(split.train) + 1)
