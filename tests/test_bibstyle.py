"""Bibliography labels follow the text's author-year rule (mo_transfer.bibstyle)."""

from pathlib import Path

from pybtex.database import parse_file

from mo_transfer import bibstyle

BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


def test_labels_of_the_book_bibliography_are_author_year():
    """The defect: the bibliography showed alpha labels such as [BKovacsS+22] next to 'Batatia et al. 2022' in the
    text."""
    entries = parse_file(str(BIB)).entries
    labels = {key: bibstyle.author_year_label(e) for key, e in entries.items()}
    assert labels["fang2026transfer"] == "Fang et al., 2026"
    assert labels["batatia2022mace"] == "Batatia et al., 2022"
    assert labels["batatia2023foundation"] == "Batatia and others, 2023"  # as the text renders "and others"
    assert not any("+" in lab for lab in labels.values())


def test_style_formats_entries_with_author_year_labels():
    bibstyle.register()
    from pybtex.plugin import find_plugin

    style = find_plugin("pybtex.style.formatting", bibstyle.STYLE_NAME)()
    entries = parse_file(str(BIB)).entries
    formatted = list(style.format_entries(entries.values()))
    assert {f.key: f.label for f in formatted}["fang2026transfer"] == "Fang et al., 2026"
    from pybtex.database import Person

    assert bibstyle._last_name(Person("Kov{\\'a}cs, D{\\'a}vid P{\\'e}ter")) == "Kovács"


def test_equal_labels_are_told_apart():
    assert bibstyle.disambiguate(["A, 2020", "B, 2021", "A, 2020"]) == ["A, 2020a", "B, 2021", "A, 2020b"]
