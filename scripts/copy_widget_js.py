#!/usr/bin/env python
"""Copy the JavaScript that renders Jupyter widgets (nglview) and equations (MathJax) in the static book, so pages
load nothing from a CDN.

By default a Jupyter Book page with widgets loads require.js from cdnjs, the widget manager
(@jupyter-widgets/html-manager) and every widget's own JavaScript from cdn.jsdelivr.net, and a page with math loads
MathJax from cdn.jsdelivr.net. This script puts local copies under ``widgets_static/vendor/`` (git-ignored;
``_config.yml`` serves ``widgets_static`` as static files):

- ``vendor/require.js``            npm ``requirejs``
- ``vendor/embed-amd.js`` + fonts  npm ``@jupyter-widgets/html-manager`` ``dist/``
- ``vendor/npm/nglview-js-widgets@<version>/dist/index.js``  from the installed nglview package
- ``vendor/mathjax/tex-mml-svg.js`` + the components it loads on demand  npm ``mathjax`` ``es5/`` (SVG output: no
  web fonts to fetch, so equations render from ``file://`` too; ``mathjax_path`` in ``_config.yml`` points here)

``widgets_static/local-widgets-cdn.js`` (committed) then points the widget manager at ``vendor/npm/``. npm
tarballs are fetched once with ``npm pack`` into a cache folder (default ``_build/npm-cache``) and reused.

Usage: python scripts/copy_widget_js.py [--dest widgets_static/vendor] [--cache _build/npm-cache]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: npm packages and versions. html-manager 1.0.x is the widget manager of ipywidgets 8.1.x.
NPM_PACKAGES = {"requirejs": "2.3.8", "@jupyter-widgets/html-manager": "1.0.15", "mathjax": "3.2.2"}
NGLVIEW_JS = "nglview-js-widgets"
#: The MathJax entry point the book loads (``mathjax_path`` in ``_config.yml``, relative to ``_static``).
MATHJAX_ENTRY = "tex-mml-svg.js"
#: Folders of ``es5/`` that MathJax loads on demand (TeX extensions, menu, accessibility, SVG output); the CommonHTML
#: output and its web fonts, the other combined bundles and the node entry point are not needed.
MATHJAX_DIRS = ("input", "ui", "a11y", "adaptors", "output/svg", "sre")
MATHJAX_FILES = (MATHJAX_ENTRY, "output/svg.js", "core.js", "loader.js", "startup.js")


def tarball_name(pkg: str, version: str) -> str:
    """File name ``npm pack`` gives a package: ``@scope/name`` -> ``scope-name-<version>.tgz``."""
    return f"{pkg.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_pack(pkg: str, version: str, cache: Path) -> Path:
    """The package tarball in ``cache``, fetched with ``npm pack`` if absent."""
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / tarball_name(pkg, version)
    if not tgz.is_file():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("copy_widget_js: npm is needed to fetch the widget JavaScript (Debian: apt-get install npm)")
        print(f"copy_widget_js: npm pack {pkg}@{version}", flush=True)
        subprocess.run([npm, "pack", f"{pkg}@{version}", "--pack-destination", str(cache), "--silent"],
                       check=True, stdout=subprocess.DEVNULL)
    if not tgz.is_file():
        sys.exit(f"copy_widget_js: npm pack did not produce {tgz}")
    return tgz


def extract(tgz: Path, members: dict[str, Path]) -> None:
    """Extract tar members (``package/...`` paths) to the given destination files."""
    with tarfile.open(tgz) as tar:
        for name, dest in members.items():
            f = tar.extractfile(f"package/{name}")
            if f is None:
                raise FileNotFoundError(f"{name} not in {tgz}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.read())


def html_manager_members(tgz: Path, dest: Path) -> dict[str, Path]:
    """embed-amd.js and the assets next to it (fonts and images), no source maps or the non-AMD bundles."""
    skip = {"embed.js", "libembed-amd.js", "embed.js.LICENSE.txt"}
    out = {}
    with tarfile.open(tgz) as tar:
        for m in tar.getmembers():
            if not m.isfile() or not m.name.startswith("package/dist/"):
                continue
            name = m.name[len("package/dist/"):]
            if "/" in name or name in skip or name.endswith(".map"):
                continue
            out[f"dist/{name}"] = dest / name
    if "dist/embed-amd.js" not in out:
        raise FileNotFoundError(f"dist/embed-amd.js not in {tgz}")
    return out


def mathjax_members(tgz: Path, dest: Path) -> dict[str, Path]:
    """The MathJax entry point and the components it loads on demand (``MATHJAX_DIRS``), from ``es5/``."""
    out = {}
    with tarfile.open(tgz) as tar:
        for m in tar.getmembers():
            if not m.isfile() or not m.name.startswith("package/es5/"):
                continue
            name = m.name[len("package/es5/"):]
            if name in MATHJAX_FILES or any(name.startswith(d + "/") for d in MATHJAX_DIRS):
                out[f"es5/{name}"] = dest / name
    if f"es5/{MATHJAX_ENTRY}" not in out:
        raise FileNotFoundError(f"es5/{MATHJAX_ENTRY} not in {tgz}")
    return out


def nglview_js() -> tuple[str, Path]:
    """Frontend version that nglview's widgets ask for, and the folder of its installed nbextension JavaScript."""
    from jupyter_core.paths import jupyter_path
    from nglview._frontend import __frontend_version__

    for base in jupyter_path("nbextensions"):
        folder = Path(base) / NGLVIEW_JS
        if (folder / "index.js").is_file():
            return __frontend_version__, folder
    sys.exit("copy_widget_js: nglview's index.js not found in any Jupyter nbextensions folder; is nglview installed?")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=ROOT / "widgets_static" / "vendor")
    ap.add_argument("--cache", type=Path, default=ROOT / "_build" / "npm-cache")
    args = ap.parse_args(argv)
    dest: Path = args.dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)

    req = npm_pack("requirejs", NPM_PACKAGES["requirejs"], args.cache)
    extract(req, {"require.js": dest / "require.js"})
    hm = npm_pack("@jupyter-widgets/html-manager", NPM_PACKAGES["@jupyter-widgets/html-manager"], args.cache)
    extract(hm, html_manager_members(hm, dest))
    mj = npm_pack("mathjax", NPM_PACKAGES["mathjax"], args.cache)
    extract(mj, mathjax_members(mj, dest / "mathjax"))

    version, folder = nglview_js()
    ngl_dest = dest / "npm" / f"{NGLVIEW_JS}@{version}" / "dist"
    ngl_dest.mkdir(parents=True)
    for f in folder.iterdir():
        if f.is_file() and f.suffix in (".js", ".png") and f.name != "extension.js":
            shutil.copy2(f, ngl_dest / f.name)

    files = sorted(p for p in dest.rglob("*") if p.is_file())
    manifest = {
        "npm": NPM_PACKAGES,
        NGLVIEW_JS: {"version": version, "source": str(folder)},
        "files": {str(p.relative_to(dest)): sha256(p) for p in files},
    }
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = sum(p.stat().st_size for p in files) / 1e6
    print(f"copy_widget_js: {len(files)} files, {size:.1f} MB in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
