"""Exit codes and the one exception tree; ``cli.py`` maps these to exit codes in one place."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``digitform`` CLI (listed in the README).

    Modelled on OCRmyPDF's ``ExitCode``: one code per cause so that batch
    schedulers can tell "some pages need a rescan" from "the install is broken".
    """

    OK = 0  # every page was read (some digits may still be flagged for review)
    PAGES_FAILED = 1  # some pages failed; their rows are in the output with the error
    USAGE = 2  # bad command line (Typer/Click's own code for usage errors)
    NO_INPUT = 3  # no readable image found under the given paths
    CONFIG = 4  # bad config / template / option value
    MODEL = 5  # model weights missing, corrupt or incompatible
    OUTPUT = 6  # output file cannot be written
    INTERNAL = 15  # a bug: please report with the traceback (run with --verbose)
    INTERRUPTED = 130  # Ctrl-C


class DigitformError(Exception):
    """Base of every error digitform raises on purpose.

    Attributes:
        exit_code: the ``ExitCode`` the CLI exits with.
        hint: one short sentence telling the user what to do next.
    """

    exit_code: ExitCode = ExitCode.INTERNAL
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        """The message and the hint on one line, as the CLI prints it."""
        msg = " ".join(str(self).split())
        return f"{msg} ({self.hint})" if self.hint else msg


class InputError(DigitformError):
    """A scan cannot be read: missing, empty, corrupt, truncated, unsupported or too large.

    Raised per file or page; the batch records a failed page and carries on.
    """

    exit_code = ExitCode.PAGES_FAILED
    hint = "re-scan or re-export the file as PNG/TIFF/JPEG"
    page_index: int = 0  # 0-based page the error is about (0 for whole-file errors)


class NoInputError(DigitformError):
    """No image file was found under the paths given on the command line."""

    exit_code = ExitCode.NO_INPUT
    hint = "pass image files or folders holding .png/.jpg/.bmp/.tif files"


class ConfigError(DigitformError):
    """A config file, template or option value is invalid."""

    exit_code = ExitCode.CONFIG
    hint = "fix the value named above (see README, 'Configuration')"


class ModelError(DigitformError):
    """The model checkpoint is missing, corrupt or incompatible with this version."""

    exit_code = ExitCode.MODEL
    hint = "reinstall digitform or pass --model pointing at a checkpoint from 'digitform train'"


class OutputError(DigitformError):
    """The results cannot be written (unknown suffix, unwritable path)."""

    exit_code = ExitCode.OUTPUT
    hint = "choose an output path ending in .csv, .json or .jsonl in a writable folder"


class PageError(DigitformError):
    """A page was decoded but could not be processed (e.g. no usable content)."""

    exit_code = ExitCode.PAGES_FAILED
    hint = "check the page image; it is reported as failed and the batch goes on"
