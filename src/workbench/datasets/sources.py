"""Reading a mapping's sources: SQL tables and queries (streamed), and files (CSV, parquet, JSON lines,
spreadsheets) matched by a glob. Everything comes back as a polars frame of the source's own columns;
`workbench.datasets.mapping` turns those into entity-store columns.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from tqdm.auto import tqdm

from workbench import paths, secrets
from workbench.datasets.schema import TIME_FORMAT
from workbench.datasets.store import ExtractionError

#: Rows per chunk fetched from a server-side cursor: memory stays bounded by one chunk of raw rows
#: plus the columnar frame being built.
CHUNK_ROWS = 100_000
FORMATS = ("csv", "parquet", "jsonl", "xlsx")


def redact(url: str) -> str:
    """A source as it may be recorded (watermark, summaries, messages): no password."""
    return secrets.redact_url(url)


# --------------------------------------------------------------------------- SQL


def open_database(url: str) -> tuple[sa.Engine, str]:
    """An engine on `url` (any SQLAlchemy URL) and the URL as it may be shown."""
    try:
        parsed = sa.make_url(url)
    except ArgumentError as exc:
        raise ExtractionError(f"{url!r} is not a SQLAlchemy database URL (e.g. sqlite:///path/to/db.sqlite)") from exc
    shown = redact(parsed.render_as_string(hide_password=False))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") and not parsed.database.startswith("file:"):
        # SQLite would quietly create an empty database at a mistyped path.
        db = Path(parsed.database)
        if not db.exists():
            hint = ""
            if db.resolve() == paths.demo_database().resolve():
                hint = " (build the demo retailer first: `workbench demo-data`)"
            raise ExtractionError(f"source {shown}: database file {db} does not exist{hint}")
        if not db.is_file():
            raise ExtractionError(f"source {shown}: {db} is not a file")
    kwargs = {}
    if parsed.get_backend_name() == "postgresql":
        # times with a time zone come back in UTC, and naive window bounds are read as UTC
        kwargs["connect_args"] = {"options": "-c TimeZone=UTC"}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise ExtractionError(f"source {shown}: cannot open it: {exc}") from exc
    return engine, shown


def check_tables(engine: sa.Engine, shown: str, requires: dict[str, list[str]]) -> None:
    """Every table and column the mapping declares it needs is there, or an error naming all that are missing."""
    if not requires:
        return
    def split(name: str) -> tuple[str | None, str]:  # "schema.table" or "table"
        schema, _, table = name.rpartition(".")
        return schema or None, table

    try:
        inspector = sa.inspect(engine)
        tables = {(schema, t) for schema in {split(n)[0] for n in requires} for t in inspector.get_table_names(schema=schema)}
    except SQLAlchemyError as exc:
        raise ExtractionError(f"source {shown}: cannot read it as a database: {getattr(exc, 'orig', exc)}") from exc
    problems = []
    missing = [t for t in requires if split(t) not in tables]
    if missing:
        problems.append(f"missing table(s) {', '.join(missing)}")
    for table, needed in requires.items():
        if split(table) in tables:
            have = {c["name"] for c in inspector.get_columns(split(table)[1], schema=split(table)[0])}
            lacking = [c for c in needed if c not in have]
            if lacking:
                problems.append(f"table {table} lacks column(s) {', '.join(lacking)}")
    if problems:
        raise ExtractionError(f"source {shown} does not have the tables this mapping reads: {'; '.join(problems)}")


def bound(engine: sa.Engine, t: datetime):
    # SQLite keeps times as ISO text: compare text with text in the same layout.
    return t.strftime(TIME_FORMAT) if engine.dialect.name == "sqlite" else t


def sql_frame(conn, statement, params: dict, *, progress: bool = False, desc: str = "", total: int | None = None) -> pl.DataFrame:
    """The statement's rows, fetched in chunks through a server-side cursor (never one big fetch)."""
    chunks = []
    columns: list[str] = []
    for chunk in sql_batches(conn, statement, params, progress=progress, desc=desc, total=total, columns=columns):
        chunks.append(chunk)
    if not chunks:
        return pl.DataFrame(schema={c: pl.String for c in columns})  # typed by the mapping's casts
    return pl.concat(chunks, how="vertical_relaxed")


def sql_batches(conn, statement, params: dict, *, progress: bool = False, desc: str = "", total: int | None = None,
                columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
    """The statement's rows as frames of `CHUNK_ROWS` rows each, through a server-side cursor; `columns`, when
    given, receives the result's column names (also when there are no rows). The cursor is closed when the
    iteration ends or is abandoned."""
    result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(statement, params)
    names = list(result.keys())
    if columns is not None:
        columns[:] = names
    try:
        with tqdm(total=total, desc=desc, unit="row", disable=not progress, leave=False) as bar:
            for rows in result.partitions(CHUNK_ROWS):
                yield pl.DataFrame([tuple(r) for r in rows], schema=names, orient="row", infer_schema_length=None)
                bar.update(len(rows))
    finally:
        result.close()


# --------------------------------------------------------------------------- files


def expand(pattern: str, what: str) -> list[Path]:
    """The files a glob names (relative to the checkout), sorted; an error naming the pattern if none."""
    resolved = paths.resolve(pattern)
    found = sorted(Path(p) for p in glob.glob(str(resolved), recursive=True))
    if not found:
        raise ExtractionError(f"{what}: no file matches {resolved}")
    directories = [p for p in found if not p.is_file()]
    if directories:
        raise ExtractionError(f"{what}: {directories[0]} is not a file")
    return found


def _format_of(path: Path, declared: str | None) -> str:
    if declared:
        return declared
    name = path.name.lower().removesuffix(".gz")
    for suffix, fmt in ((".csv", "csv"), (".txt", "csv"), (".tsv", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl"),
                        (".ndjson", "jsonl"), (".json", "jsonl"), (".xlsx", "xlsx"), (".xlsm", "xlsx")):
        if name.endswith(suffix):
            return fmt
    raise ExtractionError(f"{path}: unknown format (expected .csv, .parquet, .jsonl or .xlsx, optionally .gz; "
                          "or declare `format:` in the mapping)")


def _unreadable(path: Path, exc: Exception) -> ExtractionError:
    """The error for a file its reader failed on (polars, gzip, zip and openpyxl each raise their own kinds)."""
    return ExtractionError(f"cannot read {path}: {type(exc).__name__}: {exc}")


def _unknown_encoding(path: Path, encoding: str) -> ExtractionError:
    return ExtractionError(f"{path}: unknown encoding {encoding!r} (the mapping's `encoding:`)")


def _not_valid(path: Path, encoding: str, data: bytes, exc: UnicodeDecodeError, offset: int = 0, lines: int = 0) -> ExtractionError:
    """The error for a byte of `data` not valid in `encoding`; `data` starts `offset` bytes and `lines`
    line breaks into the file."""
    line = lines + data.count(b"\n", 0, exc.start) + 1
    return ExtractionError(
        f"{path}: byte offset {offset + exc.start} (line {line}) is not valid {encoding}: "
        f"{data[exc.start:exc.start + 4]!r}; declare the file's encoding in the mapping (e.g. `encoding: latin-1` "
        "or `encoding: cp1252`)"
    )


def decode(data: bytes, path: Path, encoding: str) -> bytes:
    """The file's bytes as UTF-8. A byte that is not valid in `encoding` is an error naming the file, the
    byte offset and the bytes, never a silent replacement character."""
    try:
        text = codecs.decode(data, encoding)
    except LookupError as exc:
        raise _unknown_encoding(path, encoding) from exc
    except UnicodeDecodeError as exc:
        raise _not_valid(path, encoding, data, exc) from exc
    if codecs.lookup(encoding).name == "utf-8" and text.startswith("\ufeff"):
        text = text[1:]
    return data if codecs.lookup(encoding).name == "utf-8" and not data.startswith(codecs.BOM_UTF8) else text.encode()


def read_file(path: Path, *, fmt: str | None = None, encoding: str = "utf-8", separator: str = ",", header: bool = True,
              quote: str | None = '"') -> pl.DataFrame:
    """One file as a frame. CSV and spreadsheets come as text columns, so a bad value is reported by
    the mapping with its column and row rather than guessed at here."""
    fmt = _format_of(path, fmt)
    try:
        if fmt == "parquet":
            return pl.read_parquet(path)
        if fmt == "xlsx":
            import pandas as pd  # openpyxl through pandas copes with spreadsheets' mixed-type columns

            pdf = pd.read_excel(path, engine="openpyxl", dtype=object)
            return pl.DataFrame({str(c): [None if pd.isna(v) else str(v) for v in pdf[c].tolist()] for c in pdf.columns},
                                schema={str(c): pl.String for c in pdf.columns})
        # Decompressed here because gzip notices a truncated file, where a streaming reader may
        # quietly return the rows it got before the break.
        data = gzip.decompress(path.read_bytes()) if path.name.lower().endswith(".gz") else path.read_bytes()
        data = decode(data, path, encoding)
        if fmt == "jsonl":
            return pl.read_ndjson(io.BytesIO(data))
        df = pl.read_csv(io.BytesIO(data), infer_schema=False, separator=separator, has_header=header, quote_char=quote)
        return df if header else df.rename({c: f"column_{i}" for i, c in enumerate(df.columns, start=1)})
    except ExtractionError:
        raise
    except Exception as exc:  # polars, gzip, zip and openpyxl each raise their own kinds
        raise _unreadable(path, exc) from exc


# bytes of a text file decoded at a time on the way to a streamed read
TEXT_BLOCK = 16 * 2**20


def _utf8_file(path: Path, encoding: str, target: Path) -> Path | None:
    """The text of a CSV / JSON-lines file as a plain UTF-8 file, read block by block: the file itself
    where it already is one, else a copy at `target` (decompressed, decoded, BOM dropped). Each block
    is checked as `decode` checks a whole file (same message: file, byte offset, line). None for an
    encoding whose line break is not the byte 10 (UTF-16, say): such a file is read whole."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError as exc:
        raise _unknown_encoding(path, encoding) from exc
    if "\n".encode(codec.name) != b"\n" or "a,".encode(codec.name) != b"a,":
        return None
    gz = path.name.lower().endswith(".gz")
    utf8 = codec.name == "utf-8"
    copy = None
    consumed, lines, rest = 0, 0, b""
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as source:
            first = source.read(len(codecs.BOM_UTF8))
            bom = utf8 and first == codecs.BOM_UTF8
            if gz or bom or not utf8:
                copy = open(target, "wb")
            pending = b"" if bom else first
            consumed = len(first) if bom else 0
            while True:
                block = source.read(TEXT_BLOCK)
                data = rest + pending + block
                pending = b""
                cut = data.rfind(b"\n") + 1 if block else len(data)
                whole, rest = data[:cut], data[cut:]
                try:
                    text = codecs.decode(whole, codec.name)
                except UnicodeDecodeError as exc:
                    raise _not_valid(path, encoding, whole, exc, consumed, lines) from exc
                consumed += len(whole)
                lines += whole.count(b"\n")
                if copy is not None:
                    copy.write(whole if utf8 else text.encode())
                if not block:
                    break
    except (OSError, EOFError, gzip.BadGzipFile) as exc:  # a truncated or broken archive: never the rows before the break
        raise _unreadable(path, exc) from exc
    finally:
        if copy is not None:
            copy.close()
    return target if copy is not None else path


def file_batches(pattern: str, what: str, scratch: Path, *, fmt: str | None = None, encoding: str = "utf-8",
                 separator: str = ",", header: bool = True, quote: str | None = '"') -> Iterator[pl.DataFrame] | None:
    """The rows of every file the glob names as frames of about `CHUNK_ROWS` rows, with `__file` and
    `__line` as `read_files` gives them, read by a streaming scan (never a whole file in memory). None
    where that cannot be: a spreadsheet, an encoding without a byte-10 line break, or files whose
    columns differ (`read_files` stacks those by name)."""
    found = expand(pattern, what)
    formats = {_format_of(p, fmt) for p in found}
    if formats - {"csv", "jsonl", "parquet"} or len(formats) != 1:
        return None
    kind = formats.pop()
    scans = []
    for i, path in enumerate(found):
        if kind == "parquet":
            scan = pl.scan_parquet(path)
        else:
            text = _utf8_file(path, encoding, scratch / f"text-{i:06d}.utf8")
            if text is None:
                return None
            scan = (pl.scan_ndjson(text) if kind == "jsonl" else
                    pl.scan_csv(text, infer_schema=False, separator=separator, has_header=header, quote_char=quote))
        try:
            names = scan.collect_schema().names()
        except Exception as exc:  # noqa: BLE001 - polars raises its own kinds
            raise _unreadable(path, exc) from exc
        if kind == "csv" and not header:
            scan = scan.rename({c: f"column_{n}" for n, c in enumerate(names, start=1)})
        scan = scan.rename({c: c.strip().lstrip("\ufeff") for c in scan.collect_schema().names()})
        first_line = 2 if kind == "csv" and header else 1
        scans.append((path, scan.with_row_index("__line", offset=first_line).with_columns(
            pl.col("__line").cast(pl.Int64), __file=pl.lit(path.name))))
    if len({tuple(scan.collect_schema().names()) for _, scan in scans}) > 1:
        return None

    def batches():
        for path, scan in scans:
            try:
                for batch in scan.collect_batches(chunk_size=CHUNK_ROWS):
                    yield batch.select(*[c for c in batch.columns if not c.startswith("__")], "__file", "__line")
            except ExtractionError:
                raise
            except Exception as exc:  # noqa: BLE001 - polars raises its own kinds
                raise _unreadable(path, exc) from exc

    return batches()


def read_files(pattern: str, what: str, **options) -> pl.DataFrame:
    """Every file the glob names, stacked; `__file` and `__line` (the row's line in its file) say where each row came from."""
    frames = []
    for path in expand(pattern, what):
        df = read_file(path, **options)
        df = df.rename({c: c.strip().lstrip("\ufeff") for c in df.columns})
        header = 2 if _format_of(path, options.get("fmt")) in ("csv", "xlsx") and options.get("header", True) else 1
        frames.append(df.with_columns(__file=pl.lit(path.name), __line=pl.int_range(pl.len(), dtype=pl.Int64) + header))
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
