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
    engine: Optional[str] = typer.Option(None, help="auto | torch | onnx  [default: auto = onnx (ONNX Runtime) on the CPU, torch on CUDA]"),
    batch_size: Optional[int] = typer.Option(None, help="Crops per forward pass  [default: 256]"),
    min_confidence: Optional[float] = typer.Option(None, help="Flag digits below this confidence  [default: the model's threshold]"),
    model: Optional[Path] = typer.Option(None, help="Checkpoint file, or a .onnx from 'digitform export'  [default: the shipped model]"),
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
    from pipeline.run import load_predictor, process_batch
    from pipeline.writer import open_writer

    try:
        settings = cfg.build(
            cfg.RunSettings, config, device=device, engine=engine, batch_size=batch_size, min_confidence=min_confidence,
            model=model, max_megapixels=max_megapixels,
        )
        predictor = load_predictor(settings)
        with ExitStack() as stack, _progress(quiet) as bar:
            writers = [stack.enter_context(open_writer(o, predictor.describe())) for o in output]
            task = bar.add_task("reading scans", total=None)

            def emit(form) -> None:  # noqa: ANN001
                for w in writers:
                    w.add(form)

            def on_file(path: Path, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=f"reading {path.name[:30]}")

            summary = process_batch(paths, settings, emit, predictor=predictor, on_file=on_file)
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
    finetune: Optional[Path] = typer.Option(
        None, help="Fine-tune on labelled crops DIR/<digit>/*.png instead of training from scratch (--data then optional)."
    ),
    model: Optional[Path] = typer.Option(None, help="With --finetune: checkpoint to start from  [default: the shipped model]"),
    lr: Optional[float] = typer.Option(None, help="With --finetune: learning rate  [default: 3e-4]"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train the digit CNN on MNIST (reproduces the shipped weights with configs/train.yaml), or fine-tune it.

    With --finetune DIR: start from the shipped (or --model) checkpoint, hold out 20% of each
    digit's crops, train a few epochs (--epochs, default 5) at a low learning rate, refit the
    temperature, write --out (default runs/finetune/finetuned.pt) and print a JSON report with
    the held-out accuracy before and after on stdout.
    """
    _logging(verbose)
    from pipeline import config as cfg
    from pipeline.data import ensure_mnist
    from pipeline.train import train as run_train

    if finetune is not None:
        try:
            if resume or max_batches is not None or work_dir is not None:
                raise ConfigError("--resume, --max-batches and --work-dir do not apply to --finetune", hint="drop them")
            fc = cfg.build(cfg.FinetuneConfig, config, crops=finetune, model=model, out=out, data=data, epochs=epochs,
                           batch_size=batch_size, seed=seed, device=device, lr=lr)
            if fc.data is not None:
                ensure_mnist(fc.data, download=download)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
            raise _fail(exc) from None
        _finetune(fc, quiet)
        return
    if model is not None or lr is not None:
        raise _fail(ConfigError("--model and --lr are only used with --finetune", hint="set lr in the training YAML"))
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


def _finetune(fc, quiet: bool) -> None:  # noqa: ANN001 - pipeline.config.FinetuneConfig
    """``digitform train --finetune``: run it, JSON report on stdout, one summary line on stderr."""
    from pipeline.finetune import finetune as run_finetune

    try:
        with _progress(quiet) as bar:
            task = bar.add_task("fine-tuning", total=None)

            def progress(phase: str, done: int, total: int, metrics: dict) -> None:
                if phase == "train":
                    bar.update(task, completed=done, total=total, description=f"epoch {metrics['epoch']} loss {metrics['loss']:.4f}")

            result = run_finetune(fc, progress=progress)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
        raise _fail(exc) from None
    typer.echo(json.dumps(result.to_dict(), indent=2))
    if not quiet:
        err.print(
            f"wrote {result.checkpoint}: held-out accuracy {100 * result.before_accuracy:.1f}% -> {100 * result.after_accuracy:.1f}% "
            f"on {result.n_held_out} crops ({result.n_finetune} trained on), temperature {result.temperature:.3f}",
            markup=False, soft_wrap=True,
        )


@app.command()
def export(
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx | torchscript"),
    output: Path = typer.Option(..., "--output", "-o", help="Model file to write (metadata goes to OUT.json beside it)."),
    model: Optional[Path] = typer.Option(None, help="Checkpoint to export  [default: the shipped model]"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Export the classifier (normalisation + CNN + calibrated softmax) to ONNX or TorchScript.

    The exported model maps (N, 1, 28, 28) float32 crops (ink in [0, 1]) to (N, C) calibrated
    probabilities; it is checked against PyTorch before it is written.
    """
    _logging(verbose)
    from pipeline.classify.checkpoint import load_checkpoint
    from pipeline.export import export_model

    try:
        if fmt not in ("onnx", "torchscript"):
            raise ConfigError(f"--format {fmt}: unknown export format", hint="use onnx or torchscript")
        result = export_model(load_checkpoint(model, "cpu"), output, fmt)  # type: ignore[arg-type]
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
        raise _fail(exc) from None
    p = result.parity
    err.print(
        f"wrote {result.path} and {result.metadata_path}: {result.metadata['input_name']} (N,1,28,28) float32 -> "
        f"{result.metadata['output_name']} (N,{len(result.metadata['classes'])}) float32; parity with PyTorch on {p.n} crops: "
        f"max abs diff {p.max_abs_diff:.1e} (<= {p.tolerance:.0e}), same top class {100 * p.argmax_agree:.0f}%",
        markup=False, soft_wrap=True,
    )


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write the forms and truth.json into."),
    count: int = typer.Option(6, min=1, max=10000, help="Number of forms."),
    seed: int = typer.Option(1, help="Random seed (same seed, same forms)."),
    style: str = typer.Option("sample", help="sample | holdout (other layouts and distortions)"),
    data: Path = typer.Option(Path("../shared/data/mnist"), help="Folder of the MNIST IDX files (test digits are used)."),
    split: str = typer.Option("test", help="test: forms to measure on | train: forms to train on (MNIST training digits, validation ones left out)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Draw realistic synthetic scanned forms from MNIST test digits, with a truth file."""
    _logging(verbose)
    from pipeline.synth import generate_forms

    try:
        if style not in ("sample", "holdout"):
            raise ConfigError(f"--style {style}: unknown style", hint="use sample or holdout")
        truth = generate_forms(out_dir, count, seed, data, style=style, split=split)
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


@app.command()
def evaluate(
    data: Optional[Path] = typer.Option(None, help="Folder of the MNIST IDX files (t10k-* unless --split train)."),
    crops: Optional[Path] = typer.Option(None, help="Folder of labelled single-digit images DIR/<digit>/*.png."),
    forms: Optional[Path] = typer.Option(None, help="truth.json of scanned forms (or the folder holding it)."),
    split: str = typer.Option("test", help="MNIST split for --data: test | train"),
    model: Optional[Path] = typer.Option(None, help="Checkpoint file  [default: the shipped model]"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda  [default: auto]"),
    threshold: Optional[float] = typer.Option(None, "--threshold", "--min-confidence", help="Flag digits below this confidence  [default: the model's threshold]"),
    target_error: Optional[float] = typer.Option(None, help="Also recommend the lowest threshold keeping the error rate among unflagged digits at or below this (0.001 = 1 in 1000)."),
    write_threshold: bool = typer.Option(False, help="Store the recommended threshold in the --model checkpoint (needs --target-error and --model)."),
    out_dir: Path = typer.Option(Path("eval"), help="Folder for confusion.png, error_reject.png, worst_errors.png, summary.json."),
    batch_size: Optional[int] = typer.Option(None, help="Crops per forward pass  [default: 256]"),
    json_only: bool = typer.Option(False, "--json", help="Print only the JSON summary on stdout."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Measure accuracy, calibration and review flags on labelled digits; draw plots; recommend a threshold.

    Exit codes: 0 done; 2 usage; 3 no input; 4 config; 5 model; 6 output. See the README.
    """
    _logging(verbose)
    from pipeline.evaluate import run_evaluation

    try:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"--threshold {threshold}: must be in [0, 1]", hint="e.g. --threshold 0.9")
        summary = run_evaluation(
            data=data, crops=crops, forms=forms, split=split, model=model, device=device or "auto", threshold=threshold,
            target_error=target_error, write_threshold=write_threshold, out_dir=out_dir, batch_size=batch_size or 256,
        )
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - mapped to exit codes in _fail
        raise _fail(exc) from None
    if not json_only:
        s = summary
        typer.echo(
            f"{s['kind']} {s['source']}: {s['n']} digits, accuracy {100 * s['accuracy']:.2f}% ({s['errors']} errors), "
            f"ECE {s['ece']:.4f}"
        )
        if s["kind"] == "forms":
            typer.echo(f"cells: recall {s['cell_recall']:.4f}, precision {s['cell_precision']:.4f}; "
                       f"digit accuracy counting missed cells {s['digit_accuracy']:.4f}; fields exact {s['field_accuracy']:.4f}")
        typer.echo(
            f"threshold {s['threshold']:g}: {100 * s['flag_rate']:.2f}% of digits flagged, {100 * s['caught']:.1f}% of errors caught, "
            f"{s['unflagged_errors_per_1000']:.3f} unflagged errors per 1000 digits"
        )
        if "target_error" in s:
            rec = s["recommended_threshold"]
            typer.echo(
                f"target error {s['target_error']:g}: " + (f"recommended threshold {rec:g} ({100 * s['recommended_flag_rate']:.2f}% flagged)"
                                                          if rec is not None else "no threshold reaches it on this data")
            )
        if "threshold_written" in s:
            typer.echo(f"wrote threshold {s['threshold_written']['threshold']:g} into {s['threshold_written']['file']}")
        typer.echo("plots: " + ", ".join(v for k, v in s["files"].items() if k != "summary"))
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def predict(
    paths: list[Path] = typer.Argument(..., help="Images of single digits, and/or folders of them (searched recursively)."),
    model: Optional[Path] = typer.Option(None, help="Checkpoint file  [default: the shipped model]"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda  [default: auto]"),
    threshold: Optional[float] = typer.Option(None, "--min-confidence", "--threshold", help="Flag digits below this confidence  [default: the model's threshold]"),
    batch_size: Optional[int] = typer.Option(None, help="Images per forward pass  [default: 256]"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Read single-digit images (any size, either polarity, boxed or not): one JSON line per image.

    Exit codes: 0 all read; 1 some files could not be read (their lines carry "error");
    2 usage; 3 no input; 4 config; 5 model. See the README.
    """
    _logging(verbose)
    from pipeline.single import predict_images, prediction_to_dict

    failed = 0
    try:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"--min-confidence {threshold}: must be in [0, 1]", hint="e.g. --min-confidence 0.9")
        for pred in predict_images(paths, model=model, device=device or "auto", threshold=threshold, batch_size=batch_size or 256):
            failed += pred.error is not None
            typer.echo(json.dumps(prediction_to_dict(pred)))
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - mapped to exit codes in _fail
        raise _fail(exc) from None
    raise typer.Exit(int(ExitCode.PAGES_FAILED if failed else ExitCode.OK))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("digitform: interrupted", markup=False, soft_wrap=True)
        sys.exit(int(ExitCode.INTERRUPTED))


if __name__ == "__main__":
    main()
