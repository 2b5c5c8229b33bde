"""digitform command line (Typer): parse, call one pipeline function, map errors to exit codes."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline import __version__
from pipeline.errors import ConfigError, DigitformError, ExitCode

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Batch ICR of handwritten digits on scanned forms: comb fields and digit boxes to CSV/JSON, doubtful digits flagged.",
)
err = Console(stderr=True, highlight=False)


def _fail(exc: BaseException) -> typer.Exit:
    """The one place where exceptions become a one-line message and an exit code."""
    if isinstance(exc, DigitformError):
        err.print(f"digitform: error: {exc.one_line()}", markup=False, soft_wrap=True)
        return typer.Exit(int(exc.exit_code))
    if isinstance(exc, KeyboardInterrupt):
        err.print("digitform: interrupted", markup=False, soft_wrap=True)
        return typer.Exit(int(ExitCode.INTERRUPTED))
    logging.getLogger("digitform").exception("internal error")
    err.print(f"digitform: internal error: {type(exc).__name__}: {exc} (please report it, with the output of --verbose)", markup=False, soft_wrap=True)
    return typer.Exit(int(ExitCode.INTERNAL))


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, disable=quiet or not err.is_terminal, transient=False,
    )


def _version(value: bool) -> None:
    if value:
        typer.echo(f"digitform {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    pass


@app.command()
def process(
    paths: list[Path] = typer.Argument(..., help="Scan files and/or folders (searched recursively)."),
    output: list[Path] = typer.Option(..., "--output", "-o", help="Result file: .csv, .json or .jsonl (repeat for several)."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda  [default: auto]"),
    batch_size: Optional[int] = typer.Option(None, help="Crops per forward pass  [default: 256]"),
    min_confidence: Optional[float] = typer.Option(None, help="Flag digits below this confidence  [default: the model's threshold]"),
    model: Optional[Path] = typer.Option(None, help="Checkpoint file  [default: the shipped model]"),
    max_megapixels: Optional[float] = typer.Option(None, help="Refuse larger images  [default: 200]"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Run settings YAML (flags override it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Read every numeric field on every page and write the results.

    Exit codes: 0 all pages read; 1 some pages failed (their rows are still written);
    2 usage; 3 no input; 4 config; 5 model; 6 output. See the README.
    """
    _logging(verbose)
    from pipeline import config as cfg
    from pipeline.run import process_batch
    from pipeline.writer import open_writer

    try:
        settings = cfg.build(
            cfg.RunSettings, config, device=device, batch_size=batch_size, min_confidence=min_confidence,
            model=model, max_megapixels=max_megapixels,
        )
        from pipeline.classify.checkpoint import load_checkpoint
        from pipeline.train import resolve_device

        loaded = load_checkpoint(settings.model, resolve_device(settings.device))
        with ExitStack() as stack, _progress(quiet) as bar:
            writers = [stack.enter_context(open_writer(o, loaded.describe())) for o in output]
            task = bar.add_task("reading scans", total=None)

            def emit(form) -> None:  # noqa: ANN001
                for w in writers:
                    w.add(form)

            def on_file(path: Path, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=f"reading {path.name[:30]}")

            summary = process_batch(paths, settings, emit, model=loaded, on_file=on_file)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - mapped to exit codes in _fail
        raise _fail(exc) from None
    if not quiet:
        for line in summary.errors:
            err.print(f"digitform: failed: {line}", markup=False, soft_wrap=True)
        err.print(
            f"{summary.pages} page(s) from {summary.files} file(s): {summary.ok} ok, {summary.needs_review} need review, "
            f"{summary.failed} failed; {summary.flagged_digits} of {summary.digits} digits flagged -> "
            + ", ".join(str(o) for o in output),
            markup=False, soft_wrap=True,
        )
    raise typer.Exit(int(ExitCode.PAGES_FAILED if summary.failed else ExitCode.OK))


@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML  [default: configs/train.yaml when present]"),
    data: Optional[Path] = typer.Option(None, help="Folder of the MNIST IDX files (train-images-idx3-ubyte.gz, ...)."),
    out: Optional[Path] = typer.Option(None, help="Checkpoint to write."),
    work_dir: Optional[Path] = typer.Option(None, help="Folder for per-epoch checkpoints and curves.png."),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda"),
    max_batches: Optional[int] = typer.Option(None, help="Batches per epoch (smoke tests)."),
    resume: bool = typer.Option(False, help="Continue from WORK_DIR/last.pt."),
    download: bool = typer.Option(False, help="Let torchvision download MNIST into --data if the files are missing."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train the digit CNN on MNIST (reproduces the shipped weights with configs/train.yaml)."""
    _logging(verbose)
    from pipeline import config as cfg
    from pipeline.data import ensure_mnist
    from pipeline.train import train as run_train

    if config is None and Path("configs/train.yaml").is_file():
        config = Path("configs/train.yaml")
    try:
        tc = cfg.build(cfg.TrainConfig, config, data=data, out=out, work_dir=work_dir, epochs=epochs, batch_size=batch_size,
                       seed=seed, device=device, max_batches=max_batches)
        ensure_mnist(tc.data, download=download)
        with _progress(quiet) as bar:
            task = bar.add_task("training", total=None)

            def progress(phase: str, done: int, total: int, metrics: dict) -> None:
                if phase == "train":
                    bar.update(task, completed=done, total=total, description=f"epoch {metrics['epoch']} loss {metrics['loss']:.4f}")
                elif not quiet and not err.is_terminal:
                    err.print(f"epoch {done}/{total}: val error {100 * (1 - metrics['val_acc']):.2f}%", markup=False, soft_wrap=True)

            result = run_train(tc, resume=resume, progress=progress)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
        raise _fail(exc) from None
    if not quiet:
        err.print(
            f"wrote {result.checkpoint}: validation accuracy {100 * result.val_accuracy:.2f}%, temperature {result.temperature:.3f}, "
            f"{result.seconds / 60:.1f} min; curves in {tc.work_dir / 'curves.png'}",
            markup=False, soft_wrap=True,
        )


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write the forms and truth.json into."),
    count: int = typer.Option(6, min=1, max=10000, help="Number of forms."),
    seed: int = typer.Option(1, help="Random seed (same seed, same forms)."),
    style: str = typer.Option("sample", help="sample | holdout (other layouts and distortions)"),
    data: Path = typer.Option(Path("../shared/data/mnist"), help="Folder of the MNIST IDX files (test digits are used)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Draw realistic synthetic scanned forms from MNIST test digits, with a truth file."""
    _logging(verbose)
    from pipeline.synth import generate_forms

    try:
        if style not in ("sample", "holdout"):
            raise ConfigError(f"--style {style}: unknown style", hint="use sample or holdout")
        truth = generate_forms(out_dir, count, seed, data, style=style)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
        raise _fail(exc) from None
    err.print(f"wrote {count} form(s) and {truth}", markup=False, soft_wrap=True)


@app.command()
def score(
    results: Path = typer.Argument(..., help="A .json/.jsonl output of 'digitform process'."),
    truth: Path = typer.Argument(..., help="truth.json written by 'digitform synth'."),
) -> None:
    """Compare results with a truth file: cell recall, digit accuracy, flags (JSON on stdout)."""
    from pipeline.score import load_truth, score_pages
    from pipeline.writer import read_results

    try:
        report = score_pages(read_results(results), load_truth(truth))
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
        raise _fail(exc) from None
    typer.echo(json.dumps(report, indent=2))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("digitform: interrupted", markup=False, soft_wrap=True)
        sys.exit(int(ExitCode.INTERRUPTED))


if __name__ == "__main__":
    main()
