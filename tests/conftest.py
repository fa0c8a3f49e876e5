"""Shared fixtures: synthetic products with known contents, and the shipped real example."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

import deconfetti
from deconfetti.simulate import simulate_cube, write_products

DATA = Path(__file__).parent / "data"

#: what the synthetic cube holds: (chan, y, x, value)
LINES = [(4, 30, 30, 0.012), (6, 70, 60, 0.020)]
CONFETTI = [(5, 60, 30, 8.0), (2, 30, 70, 7.0)]
BENIGN = [(7, 45, 75, 0.02)]
CONTINUUM = [(50, 20, 0.03)]


@pytest.fixture(scope="session")
def sim():
    """A 10-channel synthetic cube (96 x 96) with two confetti, two real lines, one benign
    model cluster and one continuum source; rms 1 mJy/beam."""
    return simulate_cube(nchan=10, ny=96, nx=96, rms=1e-3, seed=3, lines=LINES,
                         continuum=CONTINUUM, confetti=CONFETTI, benign=BENIGN)


@pytest.fixture(scope="session")
def sim_fits(sim, tmp_path_factory):
    """Imagename prefix of the synthetic cube written as FITS files."""
    return write_products(sim, tmp_path_factory.mktemp("fits"), "cube", fmt="fits")


@pytest.fixture(scope="session")
def sim_casa(sim, tmp_path_factory):
    """Imagename prefix of the synthetic cube written as CASA image directories."""
    return write_products(sim, tmp_path_factory.mktemp("casa"), "cube", fmt="casa")


@pytest.fixture(scope="session")
def sim_scan(sim_fits):
    return deconfetti.scan(sim_fits)


@pytest.fixture(scope="session")
def example_scan():
    return deconfetti.scan(deconfetti.example_path())


def read_rows(name):
    with open(DATA / name) as handle:
        return list(csv.DictReader(handle))


def near(table, chan, y, x, *, radius=3.0, chan_tol=0):
    """Rows of ``table`` within ``radius`` pixels and ``chan_tol`` channels of a position."""
    mask = ((abs(table["channel"] - chan) <= chan_tol)
            & ((table["x"] - x) ** 2 + (table["y"] - y) ** 2 <= radius ** 2))
    return table[mask]


_CONCATENATE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from casa_site import write_siteconfig
write_siteconfig(sys.argv[2])
from casatools import image, regionmanager
ia, rg = image(), regionmanager()
mode = sys.argv[4]
for source, target in json.loads(sys.argv[3]):
    ia.open(source)
    shape, axis = ia.shape(), int(ia.coordsys().findcoordinate("spectral")["pixel"][0])
    ia.close()
    parts = []
    for n, (lo, hi) in enumerate(((0, shape[axis] // 2 - 1), (shape[axis] // 2, shape[axis] - 1))):
        box = rg.box([lo if a == axis else 0 for a in range(len(shape))],
                     [hi if a == axis else shape[a] - 1 for a in range(len(shape))])
        ia.open(source)
        stem, kind = str(target).rsplit(".", 1)
        part = f"{stem}.n{n}.{kind}"
        ia.subimage(part, region=box).done()
        ia.close()
        parts.append(part)
    ia.imageconcat(outfile=target, infiles=parts, axis=axis, relax=True, mode=mode).done()
"""


def concatenate(sources, targets, mode="nomove"):
    """Each CASA image of ``sources`` cut in two along its channels and put together again
    at ``targets`` as a virtual concatenation (``imageconcat.json`` naming its two parts,
    ``NAME.n0.image`` and ``NAME.n1.image``, left beside it with ``mode`` "nomove" or moved
    into it with "move", as tclean's parallel cube imaging may leave), by casatools in a
    process of its own (its casacore and python-casacore's are not mixed in the test
    process)."""
    work = Path(targets[0]).parent / "_casa"
    run = subprocess.run(
        [sys.executable, "-c", _CONCATENATE, str(Path(__file__).parents[1] / "benchmarks"),
         str(work), json.dumps([[str(s), str(t)] for s, t in zip(sources, targets)]), mode],
        capture_output=True, text=True, timeout=300, cwd=work.parent)
    assert run.returncode == 0, run.stderr
