"""Author-year labels in the book's bibliography, the same as the author-year citations in its text.

The text cites with sphinxcontrib-bibtex's ``author_year`` reference style ("Fang et al., 2026"), while the
bibliography kept pybtex's default ``alpha`` labels ("[BKovacsS+22]"), so a reader could not match one to the
other. :class:`AuthorYearStyle` is pybtex's ``unsrt`` formatting with labels built by the text's rule: one author
"A", two "A and B", more "A et al.", then the year; equal labels get a, b, ... after the year. It is registered as
the pybtex formatting style ``author_year_labels`` by :mod:`mo_transfer.sphinx_ext` and chosen with
``bibtex_default_style`` in ``_config.yml``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle

#: Name of the formatting style in pybtex's plugin registry (``bibtex_default_style`` in ``_config.yml``).
STYLE_NAME = "author_year_labels"


def _last_name(person) -> str:
    """A person's last name as plain text (LaTeX accents and braces resolved: ``Kov{\\'a}cs`` -> ``Kovács``)."""
    latex = " ".join(person.prelast_names + person.last_names) or " ".join(person.first_names)
    return Text.from_latex(latex).render_as("text")


def author_year_label(entry) -> str:
    """``"Fang et al., 2026"``: the label of one entry by the rule of the text's author-year citations."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in persons]
    if not names:
        who = entry.fields.get("organization") or entry.fields.get("title", entry.key)
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


def disambiguate(labels: Iterable[str]) -> list[str]:
    """Equal labels get a, b, c... after the year (``Batatia et al., 2023a``), in order; unique ones stay."""
    labels = list(labels)
    counts = Counter(labels)
    seen: Counter = Counter()
    out = []
    for lab in labels:
        if counts[lab] > 1:
            out.append(lab + "abcdefghijklmnopqrstuvwxyz"[seen[lab] % 26])
            seen[lab] += 1
        else:
            out.append(lab)
    return out


class AuthorYearLabelStyle(BaseLabelStyle):
    """pybtex label style: author-year labels (see :func:`author_year_label`)."""

    def format_labels(self, sorted_entries) -> Iterator[str]:
        yield from disambiguate(author_year_label(e) for e in sorted_entries)


class AuthorYearStyle(UnsrtStyle):
    """pybtex's ``unsrt`` formatting with author-year labels."""

    default_label_style = AuthorYearLabelStyle


def register() -> None:
    """Make ``author_year_labels`` known to pybtex (idempotent)."""
    from pybtex.plugin import register_plugin

    register_plugin("pybtex.style.formatting", STYLE_NAME, AuthorYearStyle, force=True)
