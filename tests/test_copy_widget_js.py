"""scripts/copy_widget_js.py: npm tarball names, which html-manager files are copied, where nglview's JS is."""

import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("copy_widget_js", ROOT / "scripts" / "copy_widget_js.py")
cw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cw)


def make_tgz(path, names):
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            data = f"// {name}".encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_tarball_name():
    assert cw.tarball_name("@jupyter-widgets/html-manager", "1.0.15") == "jupyter-widgets-html-manager-1.0.15.tgz"
    assert cw.tarball_name("requirejs", "2.3.8") == "requirejs-2.3.8.tgz"


def test_html_manager_members(tmp_path):
    tgz = tmp_path / "hm.tgz"
    make_tgz(tgz, ["dist/embed-amd.js", "dist/embed.js", "dist/embed.js.map", "dist/libembed-amd.js",
                   "dist/abc.woff2", "dist/x.svg", "dist/sub/deep.js", "lib/index.js", "package.json"])
    members = cw.html_manager_members(tgz, tmp_path / "out")
    assert sorted(members) == ["dist/abc.woff2", "dist/embed-amd.js", "dist/x.svg"]
    cw.extract(tgz, members)
    assert (tmp_path / "out" / "embed-amd.js").read_text() == "// dist/embed-amd.js"
    bad = tmp_path / "bad.tgz"
    make_tgz(bad, ["dist/embed.js"])
    with pytest.raises(FileNotFoundError):
        cw.html_manager_members(bad, tmp_path)


def test_nglview_javascript_is_installed():
    from nglview._frontend import __frontend_version__

    version, folder = cw.nglview_js()
    assert version == __frontend_version__
    assert (folder / "index.js").stat().st_size > 1_000_000
    assert (folder / "index.js").read_text()[:400].count('define(["@jupyter-widgets/base"]') == 1


def test_mathjax_members_keep_the_entry_point_and_its_components(tmp_path):
    tgz = tmp_path / "mathjax.tgz"
    make_tgz(tgz, ["es5/tex-mml-svg.js", "es5/tex-chtml.js", "es5/input/tex/extensions/ams.js", "es5/ui/menu.js",
                   "es5/output/svg.js", "es5/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
                   "es5/node-main.js", "es5/sre/mathmaps/en.json", "package.json"])
    members = cw.mathjax_members(tgz, tmp_path / "out")
    assert sorted(members) == ["es5/input/tex/extensions/ams.js", "es5/output/svg.js", "es5/sre/mathmaps/en.json",
                               "es5/tex-mml-svg.js", "es5/ui/menu.js"]  # SVG output: no web fonts copied
    cw.extract(tgz, members)
    assert (tmp_path / "out" / "tex-mml-svg.js").read_text() == "// es5/tex-mml-svg.js"
    bad = tmp_path / "bad.tgz"
    make_tgz(bad, ["es5/tex-chtml.js"])
    with pytest.raises(FileNotFoundError, match="tex-mml-svg.js"):
        cw.mathjax_members(bad, tmp_path)


def test_the_book_loads_the_copied_mathjax():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert config["mathjax_path"] == "vendor/mathjax/" + cw.MATHJAX_ENTRY  # relative to _static: served locally
    assert "widgets_static" in config["html_static_path"]
