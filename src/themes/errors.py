"""Numbered catalogue of the messages users see, each one sentence that says what to do.

In the manner of spaCy's ``errors.py``: a message is a class attribute named by its stable code,
and reading it through the class gives the message with its code in front, ready to ``format``::

    >>> Errors.E105.format(name="review.pdf")
    '[E105] review.pdf is encrypted; needs a password.'

A code never changes meaning once released: a retired message keeps its number, and a new message
takes the next free one. Numbers are reserved by stage:

====== =============================================
E0xx   general and command line
E1xx   ingest: reading PDFs, metadata, the reader pool
E2xx   segment
E3xx   codebook
E4xx   model, registry and classify
E5xx   labels
E6xx   aggregate and report
E7xx   flows
====== =============================================

Errors are raised as :class:`ThemesError` subclasses whose message is one of these (the ``code``
property reads it back); each also subclasses the built-in exception callers already catch, so
``except ValueError`` keeps working. The command line (and ``python -m flows.serve``) prints
``error[E301]: ...`` for any of them (:func:`error_line`).

Each message is one sentence (a per-file error is a product promise: one line in
``documents.csv``) ending in a full stop; placeholders name what they hold (``{name}`` is always a
file name).
"""

from __future__ import annotations

import re
from typing import Any

#: What a code looks like, and a code at the start of a message: "[E105] ...".
_NAME_RE = re.compile(r"[EW]\d{3}")
_CODE_RE = re.compile(r"^\[(?P<code>[EW]\d{3})\] ")


class _WithCodes(type):
    """Metaclass: reading ``Errors.E105`` gives ``"[E105] " + message``."""

    def __getattribute__(cls, name: str) -> Any:
        value = super().__getattribute__(name)
        if _NAME_RE.fullmatch(name):
            return f"[{name}] {value}"
        return value


class ThemesError(Exception):
    """An error a user sees: its message starts with its code, ``"[E301] ..."``."""

    def __str__(self) -> str:
        # KeyError would quote the message; a coded message is shown as written.
        return str(self.args[0]) if self.args else ""

    @property
    def code(self) -> str | None:
        """The code the message starts with ("E301"), or None when it carries none."""
        return code_of(str(self))


class ArgumentError(ThemesError, ValueError):
    """A function was given a value it cannot use."""


class LabelError(ThemesError, ValueError):
    """A decision, a label-store line, an annotation tool's export or a labelled set is unusable."""


class UnknownThemeError(ThemesError, KeyError):
    """A theme id that is not in the codebook (or not among a model's themes)."""


class MissingFileError(ThemesError, FileNotFoundError):
    """A file the user named, or the tool needs, does not exist."""


class MissingPageError(ThemesError, IndexError):
    """A page number past the end of a PDF."""


class ModelError(ThemesError, ValueError):
    """A saved model, its card or head file, its training labels or its evaluation is unusable."""


class MissingExtraError(ThemesError, ImportError):
    """An optional extra (onnxruntime, sentence-transformers, ...) is not installed."""


class UnknownPassageError(ThemesError, KeyError):
    """A passage id that is not in a run's output."""


class QueueFinishedError(ThemesError, IndexError):
    """A review session was asked to decide after its queue ran out."""


class ServerError(ThemesError, RuntimeError):
    """The Prefect server exited or did not answer."""


class PortError(ThemesError, OSError):
    """No port to serve on: the one asked for is in use, or none is free."""


# fmt: off
class Errors(metaclass=_WithCodes):
    """Every user-facing error and warning, by code; see the module docstring for the ranges."""

    # --- E0xx: general and command line -----------------------------------------------------
    E001 = "{path} is not a folder of PDFs; give --corpus a folder."
    E002 = "Give --dask (a local cluster) or --dask-address, not both."
    E003 = "{value!r} is not one of: {choices}."
    E004 = "Input line {line} is not a JSON object with 'id' and 'text' ({detail}); fix that line."
    E005 = "--write-card needs --documents DIR; add it or drop --write-card."
    E006 = ("{path} is not a folder of labelled PDFs; give --documents a folder with "
            "expected/<stem>.json beside its PDFs.")
    E007 = "{value!r} is not a format; use one of {choices}."
    E008 = "{path} is not a file; give the annotation tool's export file."
    E009 = "Give the file once, as -o {out}, not also as PATH."
    E010 = "Name the file to write with -o PATH."
    E011 = "{themes} not in the codebook; see corpus/codebook.yaml."
    E012 = "{store} holds decisions from fewer than two annotators; agreement needs two."
    E013 = "{name} has no parameter {key!r}; use one of {allowed}."

    # --- E1xx: ingest ---------------------------------------------------------------------------
    # A file that cannot be read at all.
    E101 = "{name} could not be read ({exc_type}: {detail})."
    E102 = "{name} is empty (0 bytes), not a PDF."
    E103 = "{name} is not a PDF ({reason})."
    E104 = "{name} is not a readable PDF (it has no /Root object)."
    E105 = "{name} is encrypted; needs a password."
    E106 = "{name} could not be read as a PDF ({exc_type}: {detail})."
    E107 = ("{name} is too large to be a review ({size_mb:.0f} MB, over the {limit_mb:g} MB limit); "
            "raise ingest.max_file_mb to read it.")
    E108 = ("{name} needed more than {limit_mb} MiB of memory to read (a decompression bomb or an "
            "oversized image); raise ingest.max_memory_mb to read it.")
    E109 = "{name} opens with 0 pages."
    E110 = "{name} could not be read: every page failed ({exc_type}: {detail})."
    # Scans: no text layer, and OCR.
    E111 = ("{name} has no text layer ({pages} pages); OCR needed (themes run --ocr, with ocrmypdf "
            "and tesseract installed).")
    E112 = ("{name} has no usable text layer ({pages} pages; its {chars} characters are unmapped "
            "glyphs or page furniture); OCR needed (themes run --ocr, with ocrmypdf and tesseract "
            "installed).")
    E113 = ("{name} has no text layer ({pages} pages) and cannot be OCRed: ocrmypdf is not on PATH "
            "(pip install 'themes[ocr]' and install tesseract).")
    E114 = ("{name} has no text layer ({pages} pages) and OCR took longer than {limit_s:g} s; raise "
            "ingest.ocr_timeout_s to wait longer.")
    E115 = ("{name} has no text layer ({pages} pages) and OCR failed (ocrmypdf exit code {code}: "
            "{detail}).")
    E116 = "{name} has no text layer ({pages} pages) and OCR found no text in it."
    # The reader processes.
    E117 = "{name} could not be sent to a reader process (it exited at start)."
    E118 = "{name} crashed the reader process twice (exit code {code})."
    E119 = ("{name} took longer than {limit_s:g} s to read and was stopped; raise ingest.timeout_s "
            "to wait longer.")
    # Warnings: the file is read, but not all of it or not as the manifest says.
    E120 = "{name} page {page} could not be read ({exc_type}: {detail}); the other pages are kept."
    E121 = ("{name} has {pages} pages; only the first {limit} are read (raise ingest.max_pages to "
            "read more).")
    E122 = "The manifest beside {name} could not be read ({detail}); fix or remove {manifest}."
    E123 = "The manifest year {value!r} for {name} is not a year; ignored, fix it in {manifest}."
    E124 = ("The manifest review_type {value!r} for {name} is not one of {allowed}; ignored, fix it "
            "in {manifest}.")
    E125 = "The reader's memory limit could not be set to {limit_mb} MiB; files are read without it."

    # --- E2xx: segment ---------------------------------------------------------------------------
    # None: splitting a read document into passages has no error a user can fix (a document with
    # no text yields no passages); the range stays reserved.

    # --- E3xx: codebook and the rule baselines built from it --------------------------------------
    # The file.
    E301 = ("Codebook {path} cannot be read ({reason}); check the path or set it with the codebook "
            "argument.")
    E302 = "Codebook {path} is not readable YAML: {detail}; fix the YAML."
    E303 = "Codebook {path} must be a mapping with 'version' and 'themes' at the top level."
    E304 = "Codebook {path} needs a top-level 'version' string such as \"1.0.0\" (quoted)."
    E305 = "Codebook {path} needs a non-empty top-level 'themes' list."
    E306 = "Theme {theme!r} appears more than once in codebook {path}; theme ids must be unique."
    E307 = "Codebook {path} core themes must equal config.CORE_THEMES ({detail})."
    # A theme's fields.
    E308 = ("Theme {theme!r} in codebook {path}: field '{field}' must be a list of at least "
            "{min_len} non-empty strings (quote words YAML reads as booleans, such as \"no\").")
    E309 = "Theme number {number} in codebook {path} is not a mapping."
    E310 = "Theme number {number} in codebook {path} needs an 'id' in snake_case (got {value!r})."
    E311 = "Theme {theme!r} in codebook {path} is missing the required field '{field}'."
    E312 = ("Theme {theme!r} in codebook {path} has unknown field(s) {unknown}; allowed fields are "
            "{allowed}.")
    E313 = "Theme {theme!r} in codebook {path}: field '{field}' must be a non-empty string."
    E314 = "Theme {theme!r} in codebook {path}: field 'core' must be true or false."
    E315 = "Theme {theme!r} in codebook {path}: field 'keywords' must be lower case (got {value!r})."
    # Token patterns.
    E316 = ("Theme {theme!r} in codebook {path}: field '{field}' must be a {non_empty}list of "
            "entries with the keys 'id' and 'pattern'.")
    E317 = ("Theme {theme!r} in codebook {path}: {field} entry {number} must have exactly the keys "
            "'id' and 'pattern'.")
    E318 = ("Theme {theme!r} in codebook {path}: {field} entry {number} needs a unique snake_case id "
            "(got {value!r}).")
    E319 = ("Theme {theme!r} in codebook {path}: pattern '{pattern}' in field '{field}' must be a "
            "non-empty list of token dicts.")
    E320 = "Theme {theme!r} in codebook {path}: pattern '{pattern}' in field '{field}' {problem}."
    E321 = ("Theme {theme!r} in codebook {path}: pattern '{pattern}' in field '{field}' does not "
            "compile in spaCy's Matcher ({detail}).")
    # Themes asked for by id.
    E322 = "Theme {theme!r} is not in codebook {version}; known themes: {known}."
    E323 = "Theme {theme!r} is not one of this baseline's themes ({known})."

    # --- E4xx: model, registry and classify -------------------------------------------------------
    # The registry: finding and loading a saved model.
    E401 = "No default model: {pointer} is missing; train one with `themes train`."
    E402 = ("No model at {path}: expected {file} (or {onnx} with {head}) there; give a saved version or its "
            "folder.")
    E403 = "Refusing to load {file}: it is not a skops model file ({detail})."
    E404 = ("Refusing to load {file}: it holds {types}, which themes models never contain, so it "
            "may run code; use a model saved by `themes train`.")
    E405 = "Nothing to roll back to: {models_dir} has no earlier default in {history}."
    # Training and the classifiers.
    E406 = "Theme {theme!r} has only one class in the training labels; add examples."
    E407 = "ThemeClassifier needs at least one of use_words, use_scope, use_chars; set one to True."
    E408 = "OnnxThemeClassifier needs onnxruntime and tokenizers; {hint}."
    E409 = ("{folder} has no {name}; an ONNX theme model folder needs {model_file}, {tokenizer} "
            "and {head}.")
    E410 = "{path} lacks the field(s) {missing}; export the ONNX theme model again."
    E411 = "{path}: {field} has {rows} rows for {n} themes; export the ONNX theme model again."
    E412 = "Sentence embeddings need the model package {package!r}; {hint}."
    E413 = "Sentence embeddings need torch and sentence-transformers; {hint}."
    E414 = "hybrid={value!r} is not known; use None or 'tfidf'."
    # The team-written labelled passages.
    E415 = "No labelled passages in {folder}: expected passages-*.jsonl files."
    E416 = "{name} line {line} lacks the field(s) {missing}; every labelled passage needs {required}."
    # Document-level evaluation and the model card.
    E417 = ("{name} has no {expected}: every evaluation document needs its document-level truth "
            "(known_themes) there.")
    E418 = ("Evaluation document {name} could not be read ({kind}: {detail}); fix or remove it "
            "before evaluating.")
    E419 = "No PDFs in {folder}: give the folder of the labelled evaluation documents."
    E420 = ("This evaluation is of model {evaluated}, not {version}: evaluate that model before "
            "writing its card.")
    E421 = "Model {folder} has no {card}; save the model with `themes train` to give it a card."
    # A run's output read back for review.
    E422 = ("{out} is not a run's output folder: {missing} missing; run `themes run --out {out}` "
            "first.")
    E423 = "Theme {theme!r} has no scores in {out}; the run's model scored {themes}."
    E424 = "Passage {passage!r} is not in the run at {out}."
    E425 = "A review session needs an annotator name; pass annotator= or set THEMES_ANNOTATOR."
    E426 = "The review queue is finished; there is no passage to decide."

    # --- E5xx: labels: the decision store, annotation-tool exchange, agreement, real sets ---------
    # Decisions and the store.
    E501 = "{where} has value {value!r}; use 'accept' or 'reject'."
    E502 = "{where} names the unknown theme {theme!r}; see corpus/codebook.yaml."
    E503 = "{where} has an empty {field}."
    E504 = "{name} line {line} lacks the field(s) {missing}; it is not a decision."
    E505 = ("Skipped {count} torn line(s) in the label store (a write cut short), the first "
            "{lines}; they are left in the file.")
    # Exchange with annotation tools.
    E506 = "Unknown {direction} format {value!r}; use one of {choices}."
    E507 = "{where} names no annotator; pass one with --annotator."
    E508 = "{where} has no time for its decision."
    E509 = "{where} has no text."
    E510 = "{where} has an answer but no label (theme)."
    E511 = "{where} has both accept and reject for {control!r}."
    E512 = "The CSV lacks the column(s) {missing}."
    E513 = "{path} is not a valid {fmt} export ({exc_type}: {detail})."
    # Agreement.
    E514 = "The two label sets share no ids; kappa needs items both labelled."
    # Real labelled sets (devset).
    E515 = "Row {row!r} lacks locator fields {missing}."
    E516 = "{path} has {pages} pages; page {page} does not exist."
    E517 = "Unknown locator source {source!r}; expected one of {choices}."
    E518 = "{path} line {line} is not valid JSON: {detail}."
    E519 = "No label file for the real set {stem!r} in {folder}."
    E520 = "No real label file {path}; expected e.g. 'ofsted_dev.a'."
    E521 = "Annotators a and b labelled different items ({count} differ)."
    E522 = "Item {item!r}: annotators disagree and there is no adjudication decision."
    E523 = "Item {item!r}: decision names non-core themes {themes}."
    # Warnings while rebuilding real texts: the row is dropped, the rest are kept.
    E524 = ("Cannot rebuild {count} real-text locators: no shared folder (set THEMES_SHARED_DIR or "
            "put ../shared beside the project).")
    E525 = "Cannot rebuild {count} locators: {path} is missing."
    E526 = "Cannot rebuild {locator}: {name} page {page} unreadable."
    E527 = ("Cannot rebuild {locator}: offsets {start}-{end} fall outside the {length} characters of "
            "{name} page {page}.")
    E528 = ("Cannot rebuild {locator}: the text of {name} page {page} at {start}-{end} does not "
            "match its hash (file changed?).")
    E529 = "Cannot read {name} page {page}: {exc_type}."
    E530 = "Cannot open {path}: {exc_type} {detail}."
    E531 = "{name}: dropped {dropped} of {rows} rows whose text was not rebuilt."

    # --- E6xx: aggregate and report -------------------------------------------------------------
    E601 = ("Wilson interval of {k} of {n}: successes must lie between 0 and the number of trials "
            "(is a document counted twice?).")
    E602 = "Unknown section(s) {unknown}: choose from {choices} or None for all."
    E603 = ("passages has no 'section' column, so it cannot be filtered by section; pass "
            "sections=None.")
    E604 = "PresenceRule kind {kind!r} is unknown: use one of {choices}."
    E605 = ("The card's logistic rule reads features {features}, not {expected}: re-run "
            "`themes evaluate --documents ... --write-card`.")
    E606 = "ClassifierError for {theme!r}: {field} must be a count >= 0, got {value!r}."
    E607 = "passages lacks the column(s) {missing} that de-duplication needs."

    # --- E7xx: flows: the pipeline flow and the server (python -m flows.serve) --------------------
    E701 = "Unknown sections {value!r}: use one of {choices}."
    E702 = "Dask reading runs inside the Prefect flow: drop --no-prefect."
    # Parameters of served runs: the server has no authentication, so they are checked.
    E703 = ("Refusing corpus={value!r}: served runs may only read folders under {allowed} (start "
            "the server with --allow DIR to add one).")
    E704 = ("Refusing out={value!r}: served runs may only write under {allowed} (start the server "
            "with --allow DIR to add one).")
    E705 = ("Refusing model={value!r}: give a version name from {models_dir} or a folder under "
            "{allowed}.")
    E706 = "Refusing workers={value}: served runs use 1 to {limit}."
    E707 = ("Refusing dask_address={value!r}: served runs may only use a scheduler named with "
            "--allow-dask when the server started.")
    # Starting the server.
    E708 = "No free port on {host}; stop another server or give --port."
    E709 = "Port {port} on {host} is in use; stop what listens there or leave out --port."
    E710 = ("The Prefect server exited with code {code} before {url} answered; its log, server.log "
            "in $PREFECT_HOME, says why.")
    E711 = ("The Prefect server did not answer {url} within {timeout_s:.0f} s; raise "
            "--startup-timeout to wait longer.")
    # Logged by a run: it goes on.
    E712 = ("Model {version} has no document evaluation in its card: shares are not corrected (run "
            "`themes evaluate --documents corpus/doc-eval --write-card` to add one).")
# fmt: on


def code_of(message: str | None) -> str | None:
    """The code a message starts with ("E105"), or None when it carries none."""
    m = _CODE_RE.match(message or "")
    return m.group("code") if m else None


def without_code(message: str) -> str:
    """The message without its leading "[E301] ", for showing the code another way."""
    return _CODE_RE.sub("", message, count=1)


def error_line(error: BaseException) -> str:
    """``error[E301]: <message>``, the one line a command prints for a coded error."""
    message = " ".join(str(error).split())
    code = code_of(message)
    return f"error[{code}]: {without_code(message)}" if code else f"error: {message}"


def located(error: BaseException, where: str) -> str:
    """A coded message with ``where`` put after its code: "[E502] CSV line 3: Decision ..."."""
    message = str(error)
    code = code_of(message)
    return f"[{code}] {where}: {without_code(message)}" if code else f"{where}: {message}"


def one_sentence(text: object, limit: int = 200) -> str:
    """Collapse whitespace and cut a library's message so it fits inside one of ours.

    Trailing full stops go, so that "(KeyError: 'Font')." does not end in two.
    """
    text = " ".join(str(text).split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"
