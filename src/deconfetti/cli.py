"""The ``deconfetti`` command: argument parsing, parameters, logging and exit codes.

Exit codes: 0 the command ran (whatever it found); 2 bad input (one line on stderr,
naming the file or parameter); 3 confetti found with ``--fail-on-confetti``;
1 an internal error (traceback only with ``--debug``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import warnings
from pathlib import Path

from . import __version__
from .config import default_config_text, load_config, parse_overrides
from .errors import DeconfettiWarning, InputError

__all__ = ["main", "EXIT_OK", "EXIT_BUG", "EXIT_INPUT", "EXIT_CONFETTI"]

EXIT_OK, EXIT_BUG, EXIT_INPUT, EXIT_CONFETTI, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, exit code 2 (``--help`` shows the usage)."""

    def error(self, message: str):
        self.exit(EXIT_INPUT, f"deconfetti: error: {message} (see {self.prog} --help)\n")


def _count(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deconfetti", description="Find confetti in CASA tclean products.",
        epilog="Exit codes: 0 ran; 1 internal error; 2 bad input; "
               "3 confetti found (with --fail-on-confetti).")
    parser.add_argument("--version", action="version", version=f"deconfetti {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = sub.add_parser("scan", help="scan the products of one tclean run",
                          description="Scan the products of one tclean run and write "
                                      "candidates.ecsv, summary.json, confetti.reg and "
                                      "confetti.crtf.")
    scan.add_argument("source", nargs="?", help="imagename prefix (NAME with NAME.image "
                      "beside it) or any one product (NAME.image, NAME.image.fits, ...)")
    for kind in ("image", "model", "residual", "psf", "pb", "mask"):
        scan.add_argument(f"--{kind}", metavar="PATH", help=f"explicit {kind} product")
    scan.add_argument("--out", metavar="DIR", help="output folder "
                      "(default: <imagename>.deconfetti/ beside the products)")
    _add_scan_options(scan)

    many = sub.add_parser("scan-many", help="scan every tclean run found (a survey)",
                          description="Scan every product set found under directories or "
                                      "by glob patterns, each into <imagename>.deconfetti/, and "
                                      "write survey.ecsv and survey.json.")
    many.add_argument("sources", nargs="+", metavar="DIR_OR_GLOB",
                      help="directories (searched for *.image, *.image.fits, .tt0), glob "
                           "patterns ('survey/**/*.image') or products")
    many.add_argument("--survey", metavar="DIR", default=".",
                      help="where survey.ecsv and survey.json go (default: here)")
    _add_scan_options(many)

    report = sub.add_parser("report", help="write report.html for a scan folder",
                            description="Write a self-contained report.html into a folder "
                                        "written by 'deconfetti scan'.")
    report.add_argument("scandir", help="the scan's output folder")
    report.add_argument("--top", type=_count(0), default=25, metavar="N",
                        help="candidates with figures (default 25)")
    report.add_argument("--overwrite", action="store_true", help="replace report.html")
    _add_dpi(report)
    _add_verbosity(report)

    repair = sub.add_parser(
        "repair", help="remove confetti from the model and re-restore the image",
        description="Remove from the model, in their channels only, the confetti a scan "
                    "found, where the data do not demand them (the smallest model change "
                    "that takes out their unsupported excess), and write "
                    "NAME.repaired.model/.image/.residual beside the inputs (or into --out) "
                    "and repair.ecsv into the scan folder. Inputs are never modified.")
    repair.add_argument("source", help="a scan folder (written by 'deconfetti scan'), or the "
                        "products (imagename prefix or one product): their scan in "
                        "<imagename>.deconfetti/ is used, or they are scanned first, into "
                        "DIR/<imagename>.deconfetti/ with --out DIR")
    repair.add_argument("--out", metavar="DIR",
                        help="where the repaired products (and a new scan) go (default: "
                             "beside the inputs)")
    repair.add_argument("--startmodel", action="store_true",
                        help="also write NAME.repaired.startmodel, a CASA image to pass to "
                             "tclean(startmodel=...)")
    repair.add_argument("--config", metavar="FILE", help="TOML parameter file")
    repair.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="override one parameter, e.g. repair.consistency_max=2")
    repair.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_verbosity(repair)

    config = sub.add_parser("config", help="print the default parameter file")
    _add_verbosity(config)
    return parser


def _add_scan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, metavar="SIGMA",
                        help="image spike threshold in its noise (find.threshold, default 5)")
    parser.add_argument("--config", metavar="FILE", help="TOML parameter file "
                        "(see 'deconfetti config')")
    parser.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="override one parameter; may be repeated")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--figures", type=_count(0), default=10, metavar="N",
                        help="write the figures of N candidates into OUT/figures/: "
                             "confetti first, then uncertain, real, benign, noise, diverged, "
                             "each by score (default 10; 0 for none)")
    parser.add_argument("--report", action="store_true", help="also write OUT/report.html")
    _add_dpi(parser)
    parser.add_argument("--regions", choices=("flagged", "all"), default="flagged",
                        help="candidates in the DS9/CRTF region files: 'flagged' (confetti, "
                             "diverged, uncertain; the default) or 'all'")
    parser.add_argument("--top", type=_count(0), default=25, metavar="N",
                        help="candidates with figures in the report (default 25)")
    parser.add_argument("--workers", type=_count(1), metavar="N",
                        help="blocks processed at once, in threads, and processes drawing "
                             "figures (stream.workers; default: one per CPU core, as many "
                             "as stream.memory_mb holds)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the blocks on a dask.distributed cluster, e.g. "
                             "tcp://host:8786 (the workers must see the products' paths)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the blocks an interrupted scan of the same inputs and "
                             "parameters finished (kept in OUT/.deconfetti-checkpoint/)")
    parser.add_argument("--fail-on-confetti", action="store_true",
                        help="exit with code 3 when confetti is found")
    _add_verbosity(parser)


def _add_dpi(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dpi", type=_count(20), default=72, metavar="N",
                        help="resolution of the figures (default 72; 150 for print)")


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deconfetti`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        if args.command == "config":
            print(default_config_text())
            return EXIT_OK
        if args.command == "report":
            return _report_command(args)
        if args.command == "scan-many":
            return _scan_many(args)
        if args.command == "repair":
            return _repair_command(args)
        return _scan(args)
    except InputError as exc:
        if args.debug:
            raise
        print(f"deconfetti: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("deconfetti: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: a bug, reported in one line
        if args.debug:
            raise
        print(f"deconfetti: internal error: {type(exc).__name__}: {exc} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return EXIT_BUG


def _config(args: argparse.Namespace):
    overrides = parse_overrides(args.set)
    if args.threshold is not None:
        overrides.setdefault("find", {})["threshold"] = args.threshold
    if args.workers is not None:
        overrides.setdefault("stream", {})["workers"] = args.workers
    return load_config(args.config, overrides)


def _scan(args: argparse.Namespace) -> int:
    from .io.products import open_products
    from .workflow import scan_to_folder

    config = _config(args)
    if args.source is None and args.image is None:
        raise InputError("give an imagename prefix or a product, or --image PATH")
    products = open_products(args.source if args.source is not None else args.image,
                             image=args.image, model=args.model, residual=args.residual,
                             psf=args.psf, pb=args.pb, mask=args.mask)
    with _client(args.scheduler) as client, _progress(args, products.name) as progress:
        result, paths = scan_to_folder(products, args.out, config=config, **_outputs(args),
                                       client=client, progress=progress)
    if not args.quiet:
        print(_summary_text(result, paths["catalog"].parent, paths))
    if args.fail_on_confetti and result.counts["confetti"]:
        return EXIT_CONFETTI
    return EXIT_OK


def _outputs(args: argparse.Namespace) -> dict:
    """What a scan writes, from the options."""
    return dict(overwrite=args.overwrite, resume=args.resume, figures=args.figures,
                report=args.report, top=args.top, regions=args.regions, dpi=args.dpi)


def _scan_many(args: argparse.Namespace) -> int:
    from .workflow import scan_many

    def done(number: int, total: int, image: Path, status: str) -> None:
        if not args.quiet:
            print(f"deconfetti: [{number}/{total}] {image}: {status}")

    with _client(args.scheduler) as client:
        rows, paths = scan_many(args.sources, args.survey, config=_config(args), done=done,
                                progress=lambda name: _progress(args, name), client=client,
                                **_outputs(args))
    failed = sum(row["status"] != "ok" for row in rows)
    if not args.quiet:
        total = sum(r["confetti"] for r in rows)
        print(f"deconfetti: {len(rows)} cube(s), {failed} failed, {total} confetti; "
              f"survey in {paths[0]} and {paths[1]}")
    if failed:
        return EXIT_INPUT
    if args.fail_on_confetti and any(r["confetti"] for r in rows):
        return EXIT_CONFETTI
    return EXIT_OK


@contextlib.contextmanager
def _progress(args: argparse.Namespace, name: str):
    """A progress bar over the channel blocks on a terminal, else None."""
    if args.quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    # no monitor thread: the figures are drawn in forked processes only where no other
    # thread runs (`deconfetti.drawing`)
    tqdm.monitor_interval = 0
    bar = tqdm(desc=Path(name).name, unit="block", file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


@contextlib.contextmanager
def _client(address: str | None):
    """A dask.distributed Client for ``address``, or None."""
    if address is None:
        yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"--scheduler {address}: cannot connect ({exc})") from None
    with client:
        yield client


def _report_command(args: argparse.Namespace) -> int:
    from .workflow import write_scan_report

    path = write_scan_report(args.scandir, top=args.top, overwrite=args.overwrite,
                             dpi=args.dpi)
    if not args.quiet:
        print(f"deconfetti: wrote {path}")
    return EXIT_OK


def _repair_command(args: argparse.Namespace) -> int:
    from .workflow import repair_scan

    overrides = parse_overrides(args.set)
    config = load_config(args.config, overrides) if args.config else None
    result, log, paths, log_path = repair_scan(args.source, args.out, config=config,
                                               overrides=overrides, overwrite=args.overwrite,
                                               startmodel=args.startmodel)
    if not args.quiet:
        removed = int(sum(log["status"] == "removed")) if len(log) else 0
        print(f"deconfetti: {result.products.name}: {removed} of {len(log)} confetti removed; "
              f"log in {log_path}")
        for row in log:
            after = (f"{row['unsupported_after']:.1f} after"
                     if math.isfinite(row["unsupported_after"]) else "nothing written")
            print(f"  #{row['id']} channel {row['channel']} x={row['x']} y={row['y']}: "
                  f"{row['status']} ({row['reason']}); unsupported "
                  f"{row['unsupported_before']:.1f} rms before, {after}")
        for kind, path in paths.items():
            print(f"  {'linked' if Path(path).is_symlink() else 'wrote'} {path}")
        if "startmodel" in paths:
            print(f"  re-clean with tclean(..., imagename='<new name>', "
                  f"startmodel='{paths['startmodel']}')")
        diverged = result.summary.get("diverged_channels") or []
        if diverged:
            print(f"  diverged channel(s) {', '.join(map(str, diverged))} are not repaired: a "
                  "repair takes out single candidates, and there the whole channel's model "
                  "departs from the data; re-clean them (the scan's summary gives the "
                  "selection; README: Re-clean)")
    return EXIT_OK


def _summary_text(result, outdir: Path, paths: dict) -> str:
    nchan, ny, nx = result.products.shape
    counts = result.counts
    lines = [f"deconfetti: {result.products.name} ({nchan} channel(s) of {nx} x {ny} pixels"
             f"{'' if result.products.psf else '; no psf: data test skipped'})",
             "  " + ", ".join(f"{n} {name}" for name, n in counts.items())]
    diverged = result.summary.get("diverged_channels") or []
    if diverged:
        lines.append(f"  diverged channel(s) {', '.join(map(str, diverged))}: the model departs "
                     "from the data across the channel; re-clean them without a startmodel "
                     "and a higher cyclefactor (README: Re-clean):")
        lines.extend(f"    {text}" for text in _reclean_selections(result.products, diverged))
    stalled = result.summary.get("unconverged_channels") or []
    if stalled:
        lines.append(f"  unconverged channel(s) {', '.join(map(str, stalled))}: the residual is "
                     f"{result.config.classify.unconverged_min:g} times the cube's median noise "
                     "or more (clean stalled, diverged or did not run there); confetti and real "
                     "verdicts in them, and confetti beside them, are uncertain")
    confetti = result.candidates[result.candidates["classification"] == "confetti"]
    for row in confetti[:10]:
        lines.append(f"  confetti #{row['id']}: {_where(row)}: {row['unsupported_snr']:.1f} rms "
                     "in the image that the data do not hold")
    if len(confetti) > 10:
        lines.append(f"  ... and {len(confetti) - 10} more in {paths['catalog'].name}")
    lines.append(f"  outputs in {outdir}/: " + " ".join(p.name for p in paths.values()))
    return "\n".join(lines)


def _where(row) -> str:
    """Channel (velocity or frequency), RA/Dec and pixel of a catalog row."""
    from astropy.coordinates import SkyCoord

    from .catalog import spectral_label

    sky = SkyCoord(row["ra"], row["dec"], unit="deg").to_string("hmsdms", sep=":",
                                                                precision=2)
    return (f"channel {row['channel']} ({spectral_label(row)}) at {sky} "
            f"(x={row['x']}, y={row['y']})")


def _reclean_selections(products, channels: list[int]) -> list[str]:
    """tclean's channel selection and restoring beam for each run of consecutive
    ``channels``: the same grid and beam as the cube, so the planes can be put back."""
    runs: list[list[int]] = []
    for chan in sorted(channels):
        if runs and chan == runs[-1][-1] + 1:
            runs[-1].append(chan)
        else:
            runs.append([chan])
    freq = products.frequency
    width = float(freq[1] - freq[0]) if len(freq) > 1 else float("nan")
    out = []
    for run in runs:
        beam = products.beams[run[0]]
        out.append(f"channels {run[0]}-{run[-1]}: specmode='cube', "
                   f"start='{float(freq[run[0]])!r}Hz', width='{width!r}Hz', "
                   f"nchan={len(run)}, restoringbeam="
                   f"['{beam.major.to_value('arcsec'):.6f}arcsec', "
                   f"'{beam.minor.to_value('arcsec'):.6f}arcsec', "
                   f"'{beam.pa.to_value('deg'):.6f}deg']")
    return out


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.INFO if args.verbose else (logging.ERROR if args.quiet else logging.WARNING)
    logging.basicConfig(level=level, format="deconfetti: %(message)s", stream=sys.stderr)
    warnings.simplefilter("default", DeconfettiWarning)
    if not args.debug:  # numpy's notes on all-NaN pixels are handled, not news to a user
        warnings.simplefilter("ignore", RuntimeWarning)

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DeconfettiWarning):
            if not args.quiet:
                print(f"deconfetti: warning: {message}", file=sys.stderr)
        elif args.debug:
            print(warnings.formatwarning(message, category, filename, lineno, line),
                  file=sys.stderr, end="")

    warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
