"""What a reader sees on a rendered page, measured in the browser and judged here.

:data:`PROBE_JS` runs in a page after its scripts (plotly, MathJax, widgets) are done and returns plain data: the
visible text outside code, the boxes of every plotly figure's titles, axis titles and annotations, and the width
of every table and figure output against the page's content column. The functions below turn that data into
problems a reader would notice; they are plain Python, tested without a browser (``tests/test_sitecheck.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Run in the page; returns a JSON-able object (see the keys read by the functions below).
PROBE_JS = r"""
(() => {
  const box = (el) => { const r = el.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
  const figures = [];
  document.querySelectorAll('.js-plotly-plot').forEach((plot, k) => {
    const svg = plot.querySelector('.main-svg');
    if (!svg) { return; }
    const items = [];
    const add = (sel, kind) => plot.querySelectorAll(sel).forEach((el) => {
      const text = (el.textContent || '').trim();
      const b = box(el);
      if (text && b.right - b.left > 0 && b.bottom - b.top > 0) { items.push({kind, text, ...b}); }
    });
    add('.g-gtitle .gtitle', 'title');
    add('.infolayer g[class$="title"]:not(.g-gtitle) text', 'axis title');
    add('.annotation-text-g .annotation-text', 'annotation');
    add('.slider-group .slider-label', 'slider label');
    add('.xtick text, .ytick text', 'tick label');
    plot.querySelectorAll('.modebar').forEach((el) => {
      const b = box(el);
      if (b.right - b.left > 0 && getComputedStyle(el).display !== 'none') {
        items.push({kind: 'toolbar', text: 'plotly toolbar', ...b}); }
    });
    figures.push({index: k, id: plot.id, svg: box(svg), items});
  });
  const main = document.querySelector('main article, article.bd-article, main') || document.body;
  const column = box(main);
  const wide = [];
  const scrolls = (el) => { for (let a = el; a && a !== main; a = a.parentElement) {
      const ox = getComputedStyle(a).overflowX;
      if ((ox === 'auto' || ox === 'scroll') && a.clientWidth < a.scrollWidth + 1) { return a; } }
    return null; };
  main.querySelectorAll('table, .js-plotly-plot, .jupyter-widgets, canvas').forEach((el) => {
    const b = box(el);
    if (b.right - b.left <= 0) { return; }
    const scroller = scrolls(el);  // content wider than a scrolling box is fine; the box itself must fit
    const seen = scroller ? box(scroller) : b;
    if (seen.left < column.left - 2 || seen.right > column.right + 2) {
      const cap = el.querySelector ? el.querySelector('caption') : null;
      wide.push({tag: el.tagName.toLowerCase(), cls: String(el.className || '').slice(0, 60),
                 caption: cap ? cap.textContent.trim().slice(0, 60) : '', scrolls: !!scroller, ...seen,
                 column_left: column.left, column_right: column.right});
    }
  });
  const hidden = [];  // text a reader cannot see without scrolling sideways: table captions, printed lines
  main.querySelectorAll('.cell_output caption').forEach((el) => {
    const scroller = scrolls(el);
    if (!scroller) { return; }
    const b = box(el), v = box(scroller);
    if (b.right > v.right + 2 || b.left < v.left - 2) {
      hidden.push({what: 'table caption', text: el.textContent.trim().slice(0, 60)}); }
  });
  main.querySelectorAll('.cell_output .output.stream pre').forEach((el) => {
    if (el.scrollWidth > el.clientWidth + 2) {
      hidden.push({what: 'printed output', text: el.textContent.trim().slice(0, 60)}); }
  });
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .MathJax, textarea, .highlight')
    .forEach((el) => el.remove());
  return {figures, wide, hidden, text: clone.innerText || clone.textContent || '',
          column: column};
})()
"""

#: TeX that MathJax should have turned into equations; left in visible text it means math did not render.
RAW_TEX_RE = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\frac\{|\\mathrm\{|\\left[(\[|]")

#: Boxes sharing less than this many square pixels do not count as overlapping (antialiasing, descenders).
MIN_OVERLAP_PX2 = 12.0


def raw_tex(text: str, context: int = 30) -> list[str]:
    """Snippets of visible text that still hold TeX delimiters or commands (equations MathJax did not render)."""
    out = []
    for m in RAW_TEX_RE.finditer(text):
        snippet = text[max(0, m.start() - context):m.end() + context].replace("\n", " ")
        out.append(snippet.strip())
    return out


def _overlap(a: dict, b: dict) -> float:
    w = min(a["right"], b["right"]) - max(a["left"], b["left"])
    h = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    return w * h if w > 0 and h > 0 else 0.0


def figure_problems(figures: Sequence[dict]) -> list[str]:
    """Text of a plotly figure drawn over other text of it (panel titles under axis titles, ...) or cut off by the
    figure's edge (an axis title half outside the figure)."""
    out = []
    for fig in figures:
        name = f"plotly figure {fig['index'] + 1}"
        items = fig["items"]
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                if a["kind"] == b["kind"] and a["kind"] in ("slider label", "tick label"):
                    continue  # slider labels are judged below; tick labels are plotly's to space
                if "toolbar" in (a["kind"], b["kind"]) and "tick label" in (a["kind"], b["kind"]):
                    continue  # the toolbar may cover the top corner of an axis' ticks; titles matter
                if {a["kind"], b["kind"]} == {"tick label", "axis title"}:
                    continue  # plotly places axis titles by its own tick measure (automargin)
                if _overlap(a, b) > MIN_OVERLAP_PX2:
                    out.append(f"{name}: {a['kind']} '{a['text'][:40]}' overlaps {b['kind']} '{b['text'][:40]}'")
            svg = fig["svg"]
            if a["kind"] == "toolbar":
                continue
            if (a["left"] < svg["left"] - 1 or a["right"] > svg["right"] + 1 or a["top"] < svg["top"] - 1
                    or a["bottom"] > svg["bottom"] + 1):
                out.append(f"{name}: {a['kind']} '{a['text'][:40]}' is cut off by the figure's edge")
        sliders = [a for a in items if a["kind"] == "slider label"]
        if any(_overlap(a, b) > MIN_OVERLAP_PX2 for i, a in enumerate(sliders) for b in sliders[i + 1:]):
            out.append(f"{name}: slider labels overlap each other (too many or too long for the slider)")
    return out


def width_problems(wide: Sequence[dict]) -> list[str]:
    """Tables, figures and widgets wider than the content column that do not scroll inside their own box."""
    out = []
    for w in wide:
        what = w["tag"] + (f" '{w['caption']}'" if w.get("caption") else (f" ({w['cls']})" if w.get("cls") else ""))
        if w["left"] < w["column_left"] - 2:
            out.append(f"{what} starts {w['column_left'] - w['left']:.0f} px left of the content column (clipped)")
        if w["right"] > w["column_right"] + 2:
            out.append(f"{what} runs {w['right'] - w['column_right']:.0f} px past the right edge of the content "
                       "column" + (" (its scrolling box too)" if w.get("scrolls") else
                                   " and does not scroll in its own box"))
    return out


def hidden_text_problems(hidden: Sequence[dict]) -> list[str]:
    """Table captions and printed lines whose end lies past the right edge of their box (the convergence verdict
    of Table 2.3 was hidden that way): a reader would have to find a scroll bar to read them."""
    return [f"{h['what']} '{h['text'][:50]}' is wider than its box: its end is hidden" for h in hidden]
