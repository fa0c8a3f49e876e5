"""The deconfetti command: paths, formats, outputs and exit codes."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from regions import Regions

from deconfetti.catalog import COLUMNS
from deconfetti.cli import main


def run(*args):
    """The command, without figures unless a test asks (figures are tested on their own)."""
    args = [str(a) for a in args]
    if args[0] == "scan" and "--figures" not in args:
        args += ["--figures", "0"]
    return main(args)


def test_scan_prefix_writes_every_output(sim_casa, tmp_path, capsys):
    out = tmp_path / "qa"
    assert run("scan", sim_casa, "--out", out, "--figures", "2") == 0
    printed = capsys.readouterr().out
    assert "2 confetti" in printed and "outputs in" in printed
    table = Table.read(out / "candidates.ecsv")
    assert table.colnames == list(COLUMNS)
    assert str(table["image_peak"].unit) == "Jy / beam"
    assert table["unsupported_snr"].description == COLUMNS["unsupported_snr"].description
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["confetti"] == 2
    assert summary["inputs"]["psf"].endswith("cube.psf")
    assert len(summary["channels"]) == 10 and "rms_jy_beam" in summary["channels"][0]
    assert summary["parameters"]["find"]["threshold"] == 5.0
    assert "numpy" in summary["software"]
    ds9 = Regions.read(out / "confetti.reg", format="ds9")
    crtf = Regions.read(out / "confetti.crtf", format="crtf")
    flagged = table[[c in ("confetti", "diverged", "uncertain") for c in table["classification"]]]
    assert len(ds9) == len(crtf) == len(flagged) < len(table)  # the flagged ones by default
    red = [r for r in ds9 if "red" in (r.visual.get("color"), r.visual.get("edgecolor"))]
    assert len(red) == 2
    assert abs(ds9[0].center.ra.deg - flagged["ra"][0]) < 1e-6
    first = flagged[0]
    assert ds9[0].meta["text"] == (f"{first['id']} confetti ch {first['channel']} "
                                   f"{first['velocity']:.2f} km/s")
    assert crtf[0].meta["range"][0].to_value("Hz") == pytest.approx(first["frequency"])
    assert not list(out.glob(".*part"))  # no temporary files left
    from astropy.io import fits
    assert fits.getdata(out / "peak.fits").shape == (96, 96)
    pngs = sorted(p.name for p in (out / "figures").iterdir())
    assert pngs == sorted(f"00{i}_{name}.png" for i in (1, 2) for name in
                          ("data_test", "image_maps", "model_maps", "residual_maps", "spectra"))


def test_a_rescan_replaces_the_figures_and_the_report_reuses_them(sim_fits, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "qa"
    assert run("scan", sim_fits, "--out", out, "--figures", "3", "-q") == 0
    assert run("scan", sim_fits, "--out", out, "--figures", "1", "--overwrite", "-q") == 0
    assert {p.name[:3] for p in (out / "figures").iterdir()} == {"001"}  # none left from before
    import deconfetti.report

    made = []
    real = deconfetti.report.evidence_pngs
    monkeypatch.setattr(deconfetti.report, "evidence_pngs",
                        lambda products, rows, **kw: made.extend(rows["id"]) or
                        real(products, rows, **kw))
    assert run("report", out, "--top", "2", "-q") == 0
    assert made == [2]  # the first candidate's figures came from figures/


def test_default_output_folder_beside_the_products(sim_fits, tmp_path):
    for path in sim_fits.parent.glob("cube.*.fits"):
        shutil.copy(path, tmp_path)
    assert run("scan", tmp_path / "cube.image.fits", "-q") == 0
    assert (tmp_path / "cube.deconfetti" / "candidates.ecsv").exists()


def test_explicit_products(sim_fits, tmp_path):
    args = ["scan", "--image", f"{sim_fits}.image.fits", "--model", f"{sim_fits}.model.fits",
            "--residual", f"{sim_fits}.residual.fits", "--psf", f"{sim_fits}.psf.fits",
            "--out", tmp_path / "o", "-q"]
    assert run(*args) == 0
    assert len(Table.read(tmp_path / "o" / "candidates.ecsv")) > 0


def test_threshold_and_set_options(sim_fits, tmp_path):
    assert run("scan", sim_fits, "--out", tmp_path / "a", "--threshold", "50",
               "--set", "find.model_threshold=50", "-q") == 0
    assert len(Table.read(tmp_path / "a" / "candidates.ecsv")) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["parameters"]["find"]["threshold"] == 50.0


def test_fail_on_confetti(sim_fits, tmp_path):
    assert run("scan", sim_fits, "--out", tmp_path / "a", "--fail-on-confetti", "-q") == 3
    assert run("scan", sim_fits, "--out", tmp_path / "b", "--fail-on-confetti", "-q",
               "--set", "classify.excess_min=99") == 0


def test_existing_outputs_need_overwrite(sim_fits, tmp_path, capsys):
    out = tmp_path / "o"
    assert run("scan", sim_fits, "--out", out, "-q") == 0
    assert run("scan", sim_fits, "--out", out, "-q") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert run("scan", sim_fits, "--out", out, "-q", "--overwrite") == 0


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert run("scan", tmp_path / "nothing") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "nothing" in err and "Traceback" not in err
    assert run("scan", "--image", tmp_path / "x.image") == 2
    assert run("scan", tmp_path, "--set", "find.bogus=1") == 2


def test_continuum_products_by_any_name(tmp_path):
    from deconfetti.simulate import simulate_cube, write_products

    sim = simulate_cube(nchan=1, ny=64, nx=64, seed=2, benign=[(0, 30, 30, 0.02)])
    prefix = write_products(sim, tmp_path, "cont", fmt="fits", suffix=".tt0")
    assert run("scan", f"{prefix}.model.tt0.fits", "--out", tmp_path / "o", "-q") == 0
    table = Table.read(tmp_path / "o" / "candidates.ecsv")
    assert set(table["classification"]) == {"benign"}


def test_config_command_prints_a_valid_default_file(capsys, tmp_path):
    assert run("config") == 0
    text = capsys.readouterr().out
    path = tmp_path / "params.toml"
    path.write_text(text)
    from deconfetti.config import Config, load_config

    assert load_config(path) == Config()


def test_console_script_runs_without_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "deconfetti.cli", "scan", str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("deconfetti: error:") and "Traceback" not in done.stderr


def test_path_with_spaces_and_non_ascii(sim_fits, tmp_path):
    folder = tmp_path / "my cubes ñ"
    folder.mkdir()
    for path in sim_fits.parent.glob("cube.*.fits"):
        shutil.copy(path, folder / path.name.replace("cube", "G008 ü"))
    assert run("scan", folder / "G008 ü", "-q") == 0
    assert (folder / "G008 ü.deconfetti" / "confetti.reg").exists()


def test_scan_many_over_a_survey_folder(sim, tmp_path, capsys):
    from deconfetti.simulate import write_products

    survey = tmp_path / "survey"
    write_products(sim, survey / "field1", "cube", fmt="casa")
    write_products(sim, survey / "field2", "line", fmt="fits")
    broken = survey / "field3"
    broken.mkdir(parents=True)
    for kind in ("image", "model", "residual"):
        (broken / f"bad.{kind}").mkdir()
    code = main(["scan-many", str(survey), "--survey", str(tmp_path / "s"), "--figures", "0",
                 "--fail-on-confetti"])
    printed = capsys.readouterr().out
    assert code == 2  # one cube failed; the others were scanned
    assert "[3/3]" in printed and "error" in printed
    table = Table.read(tmp_path / "s" / "survey.ecsv")
    assert list(table["status"][:2]) == ["ok", "ok"] and "bad.image" in table["status"][2]
    assert list(table["confetti"]) == [2, 2, 0]
    assert table["worst_channel"][0] in (2, 5) and table["nchan"][0] == 10
    assert (survey / "field1" / "cube.deconfetti" / "candidates.ecsv").exists()
    data = json.loads((tmp_path / "s" / "survey.json").read_text())
    assert data["cubes"] == 3 and data["failed"] == 1 and data["totals"]["confetti"] == 4
    # the survey page links each cube's scan folder (its report when there is one)
    page = (tmp_path / "s" / "survey.html").read_text()
    assert "3 cube(s), 1 failed" in page and "bad.image" in page
    links = re.findall(r'<a href="([^"]+)" title="its scan folder">', page)
    assert len(links) == 2 and all((tmp_path / "s" / link).is_dir() for link in links)
    shutil.rmtree(broken)
    stamp = (survey / "field1" / "cube.deconfetti" / "candidates.ecsv").stat().st_mtime_ns
    assert main(["scan-many", str(survey), "--survey", str(tmp_path / "s"), "--figures", "0",
                 "--fail-on-confetti"]) == 3  # a second run: the finished cubes are kept
    assert "scanned before: kept" in capsys.readouterr().out
    assert (survey / "field1" / "cube.deconfetti" / "candidates.ecsv").stat().st_mtime_ns == stamp
    assert list(Table.read(tmp_path / "s" / "survey.ecsv")["confetti"]) == [2, 2]
    assert main(["scan-many", str(survey / "*" / "*.image*"), "--survey", str(tmp_path / "t"),
                 "--figures", "0", "--overwrite", "--fail-on-confetti", "-q"]) == 3
    assert (survey / "field1" / "cube.deconfetti" / "candidates.ecsv").stat().st_mtime_ns > stamp
    assert main(["scan-many", str(tmp_path / "empty*"), "--survey", str(tmp_path)]) == 2


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    import threading
    from argparse import Namespace

    from deconfetti.cli import _progress

    with _progress(Namespace(quiet=False), "x") as update:
        assert update is None  # not a terminal under pytest
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with _progress(Namespace(quiet=True), "x") as update:
        assert update is None
    before = set(threading.enumerate())
    with _progress(Namespace(quiet=False), "cube") as update:
        update(1, 4)
        update(4, 4)
        # no monitor thread: the figures are drawn in forked processes only where no
        # other thread runs
        assert set(threading.enumerate()) <= before
    assert "cube" in capsys.readouterr().err


def test_a_diverged_channel_is_named_with_its_reclean_selection(tmp_path, capsys):
    import deconfetti
    from deconfetti.simulate import simulate_cube, write_products

    sim = simulate_cube(nchan=10, ny=96, nx=96, seed=3, diverged=[(5, 20.0)])
    prefix = write_products(sim, tmp_path, "d")
    assert main(["scan", str(prefix), "--figures", "0"]) == 0
    out = capsys.readouterr().out
    frequency = deconfetti.open_products(prefix).frequency
    assert "diverged channel(s) 5:" in out
    assert (f"channels 5-5: specmode='cube', start='{float(frequency[5])!r}Hz', "
            f"width='{float(frequency[1] - frequency[0])!r}Hz', nchan=1") in out
    # the repair says what it leaves to a re-clean
    assert main(["repair", f"{prefix}.deconfetti"]) == 0
    assert "diverged channel(s) 5 are not repaired" in capsys.readouterr().out


def test_scan_many_skips_deconfetti_outputs(sim, tmp_path, capsys):
    """A survey folder that holds scans and repairs: only the tclean runs are scanned."""
    from deconfetti.simulate import write_products

    survey = tmp_path / "survey"
    prefix = write_products(sim, survey / "field1", "cube", fmt="casa")
    assert main(["repair", str(prefix), "-q"]) == 0  # scan folder and repaired products
    assert (survey / "field1" / "cube.repaired.image").is_dir()
    assert main(["scan-many", str(survey), "--survey", str(tmp_path / "s"), "--figures", "0",
                 "--overwrite", "-q"]) == 0
    table = Table.read(tmp_path / "s" / "survey.ecsv")
    assert [Path(p).name for p in table["cube"]] == ["cube.image"]
    assert main(["scan-many", str(survey / "**" / "*.image"), "--survey", str(tmp_path / "t"),
                 "--figures", "0", "--overwrite", "-q"]) == 0
    assert len(Table.read(tmp_path / "t" / "survey.ecsv")) == 1


def test_scan_many_takes_a_virtual_concatenation_as_one_cube(sim_casa, tmp_path):
    """tclean's parallel cubes may be virtual concatenations with their parts moved inside
    (``NAME.image/NAME.n0.image``): a survey scans the cube, not its parts, and finds in it
    what the paged cube gives."""
    from conftest import concatenate

    kinds = ("image", "model", "residual", "psf", "pb")
    field = tmp_path / "survey" / "field1"
    field.mkdir(parents=True)
    concatenate([f"{sim_casa}.{k}" for k in kinds], [field / f"cube.{k}" for k in kinds],
                mode="move")
    assert (field / "cube.image" / "cube.n0.image").is_dir()
    for pattern in (tmp_path / "survey", tmp_path / "survey" / "**" / "*.image"):
        assert main(["scan-many", str(pattern), "--survey", str(tmp_path / "s"), "--figures",
                     "0", "--overwrite", "-q"]) == 0
        table = Table.read(tmp_path / "s" / "survey.ecsv")
        assert [Path(p).name for p in table["cube"]] == ["cube.image"]
    assert run("scan", sim_casa, "--out", tmp_path / "paged", "-q") == 0
    found, paged = (Table.read(folder / "candidates.ecsv")
                    for folder in (field / "cube.deconfetti", tmp_path / "paged"))
    assert len(found) and all(np.array_equal(found[name], paged[name])
                              for name in ("channel", "x", "y", "classification"))


def test_a_folder_holding_one_run_is_scanned_and_several_are_named(sim_fits, tmp_path, capsys):
    one = tmp_path / "one"
    one.mkdir()
    for path in sim_fits.parent.glob("cube.*.fits"):
        shutil.copy(path, one)
    assert run("scan", one, "--out", tmp_path / "qa", "--figures", "0", "-q") == 0
    assert (tmp_path / "qa" / "candidates.ecsv").exists()
    for path in sim_fits.parent.glob("cube.*.fits"):
        shutil.copy(path, one / path.name.replace("cube.", "other."))
    capsys.readouterr()
    assert run("scan", one, "--figures", "0") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "2 tclean runs (cube.image.fits, other.image.fits)" in err and "scan-many" in err


def test_repair_after_a_scan_uses_that_scan(sim_fits, tmp_path, capsys):
    for path in sim_fits.parent.glob("cube.*.fits"):
        shutil.copy(path, tmp_path)
    prefix = tmp_path / "cube"
    assert run("scan", prefix, "--figures", "0", "-q") == 0
    stamp = (tmp_path / "cube.deconfetti" / "candidates.ecsv").stat().st_mtime_ns
    assert run("repair", prefix, "-q") == 0  # no "already holds": the scan is used
    assert (tmp_path / "cube.deconfetti" / "candidates.ecsv").stat().st_mtime_ns == stamp
    assert (tmp_path / "cube.deconfetti" / "repair.ecsv").exists()
    assert (tmp_path / "cube.repaired.image.fits").exists()


def test_a_file_that_is_not_a_product_is_named_as_such(tmp_path, capsys):
    other = tmp_path / "truth.fits"
    other.write_bytes(b"")
    assert run("scan", other, "--out", tmp_path / "qa") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{other}: not a tclean product name" in err and "not found" not in err
    assert not (tmp_path / "qa").exists()


def test_repair_into_a_folder_writes_nothing_beside_the_inputs(sim_fits, tmp_path, capsys):
    inputs = tmp_path / "archive"
    inputs.mkdir()
    for path in sim_fits.parent.glob("cube.*.fits"):
        shutil.copy(path, inputs)
    before = sorted(p.name for p in inputs.iterdir())
    out = tmp_path / "work"
    assert run("repair", inputs / "cube", "--out", out) == 0
    assert sorted(p.name for p in inputs.iterdir()) == before
    assert (out / "cube.deconfetti" / "candidates.ecsv").exists()
    assert (out / "cube.deconfetti" / "repair.ecsv").exists()
    assert (out / "cube.repaired.image.fits").exists()
    assert f"log in {out / 'cube.deconfetti' / 'repair.ecsv'}" in capsys.readouterr().out
    stamp = (out / "cube.deconfetti" / "candidates.ecsv").stat().st_mtime_ns
    assert run("repair", inputs / "cube", "--out", out, "--overwrite", "-q") == 0  # scanned again
    assert (out / "cube.deconfetti" / "candidates.ecsv").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in inputs.iterdir()) == before


def test_all_candidates_in_the_regions_on_request(sim_fits, tmp_path):
    out = tmp_path / "qa"
    assert run("scan", sim_fits, "--out", out, "--figures", "0", "--regions", "all", "-q") == 0
    table = Table.read(out / "candidates.ecsv")
    assert len(Regions.read(out / "confetti.reg", format="ds9")) == len(table)
    assert len(Regions.read(out / "confetti.crtf", format="crtf")) == len(table)


def test_figures_at_the_resolution_asked_for(sim_fits, tmp_path):
    from PIL import Image

    sizes = {}
    for dpi in (72, 144):
        out = tmp_path / str(dpi)
        assert run("scan", sim_fits, "--out", out, "--figures", "1", "--dpi", str(dpi),
                   "-q") == 0
        with Image.open(out / "figures" / "001_data_test.png") as png:
            sizes[dpi] = png.size
    assert all(abs(big - 2 * small) <= 1 for big, small in zip(sizes[144], sizes[72]))
