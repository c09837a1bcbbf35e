"""Source mappings: how one retailer's tables or files become the entity store (docs/sources.md).

A mapping is a short YAML file (configs/sources/*.yml):

    name: demo
    source: ""                      # default source (URL or file glob); a run's `source` replaces it
    kind: sql                       # sql | files
    requires: {sales_lines: [transaction_id, ...]}   # tables/columns checked before reading (sql)
    legal_entity: {query: ..., columns: {...}} or {name: ..., currency: ..., pos_recommendations_enabled: ...}
    entities:
      sales_lines: {query|table|files: ..., columns: {target: spec, ...}, window: <source column>, rows: <filter>}
      products:    {...} or {from: sales_lines, group_by: product_id, columns: {...}}
      transactions, categories, customers, stores, wish_lists: optional

A column spec is one of
    "SourceColumn"                  the source's column, as it is
    {column: C}  {constant: V}      a column; a constant
    {expr: "SQL expression"}        evaluated by polars over the source's columns (and the columns mapped before)
    {polars: "pl.col(...)..."}      a polars expression (the mapping is trusted configuration, like a notebook)
    {lookup: {of: spec, values: {code: value}, prefixes: {prefix: value}, default: V, upper: true}}
    {keywords: {Label: [WORD, ...], ...}, of: spec, default: V}   the first label with a word in the text
    {days_since_previous: C, per: C, order_by: C, end: "2020-12-31"}   day offsets to timestamps
                                    (each customer's last order on `end`; or `origin:`, its first)
    {basket_sequence: C, per: C, days_apart: 7, end: "2020-12-31"}   baskets numbered in order, no dates:
                                    `days_apart` between a customer's consecutive baskets (end / origin as above)
    {agg: mode|median|min|max|first|last|sum|count, of: spec, where: "SQL"}   (derived entities only)
and any spec may add `cast:` (string, id, int, float, bool, date, datetime), `format:` (one strptime
layout or a list tried in order), `timezone:` (the local zone naive times are in), `required: true`.
Columns are evaluated in order, each seeing the ones before; a target starting with `_` is a working
column, not stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from workbench import paths
from workbench.datasets.store import SCHEMAS, ExtractionError

ENTITIES = ("sales_lines", "transactions", "products", "categories", "customers", "stores", "wish_lists")
#: the source-side entities that are joined into the store's tables rather than stored themselves
TRANSACTIONS_SCHEMA = {"transaction_id": pl.String(), "store_id": pl.String(), "channel": pl.String(),
                       "customer_id": pl.String(), "transaction_time": pl.Datetime("us"), "transaction_type": pl.String()}
CATEGORIES_SCHEMA = {"category_id": pl.String(), "name": pl.String()}
ENTITY_SCHEMAS = {**SCHEMAS, "transactions": TRANSACTIONS_SCHEMA, "categories": CATEGORIES_SCHEMA}
#: columns without which a table means nothing; every other column may be left out (null)
REQUIRED = {"sales_lines": ("transaction_id", "product_id"), "products": ("product_id",),
            "customers": ("customer_id",), "stores": ("store_id",), "wish_lists": ("customer_id", "product_id"),
            "transactions": ("transaction_id",), "categories": ("category_id", "name")}
LEGAL_ENTITY_COLUMNS = ("name", "currency", "pos_recommendations_enabled")
CASTS = {"string": pl.String, "id": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean,
         "date": pl.Date, "datetime": pl.Datetime("us")}
AGGREGATES = ("mode", "median", "min", "max", "first", "last", "sum", "count", "mean")
MODIFIERS = ("cast", "format", "timezone", "required")
_TYPE_NAMES = {str(pl.Datetime("us")): "a datetime", str(pl.Date()): "a date", str(pl.Float64()): "a number",
               str(pl.Int64()): "an integer", str(pl.Boolean()): "true/false", str(pl.String()): "text"}
_SHIPPED = Path(__file__).resolve().parents[3] / "configs" / "sources"


@dataclass(frozen=True)
class EntityMapping:
    name: str
    columns: dict[str, Any]
    table: str | None = None
    query: str | None = None
    files: str | None = None
    format: str | None = None
    encoding: str = "utf-8"
    separator: str = ","
    header: bool = True            # False: the file has no header row; its columns are column_1, column_2, ...
    explode: str | None = None     # a list column (a basket's items in JSON): one row per element
    quote: str | None = '"'
    where: str | None = None       # SQL condition on a `table` source
    rows: str | None = None        # SQL condition (polars) on the source's rows, any source
    window: str | None = None      # the source column the window is pushed down to (SQL sources)
    window_by_day: bool = False    # that column holds a date: the database is asked for whole days
    derive_from: str | None = None
    group_by: str | None = None
    sort: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceMapping:
    name: str
    kind: str
    source: str
    path: Path | None
    entities: dict[str, EntityMapping]
    legal_entity: dict[str, Any]
    requires: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""
    text: str = ""

    def where(self, what: str) -> str:
        return f"mapping {self.name!r}{f' ({self.path})' if self.path else ''}: {what}"


class MappingError(ExtractionError):
    """The mapping file itself is wrong (unknown key, entity, spec): the message names the file and the place."""


def shipped_mappings() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_SHIPPED.glob("*.yml"))}


def mapping_path(name_or_path: str | Path) -> Path:
    """A mapping by file path, or by the name of one shipped in configs/sources/."""
    text = str(name_or_path)
    shipped = shipped_mappings()
    if text in shipped:
        return shipped[text]
    path = paths.resolve(text)
    if not path.exists():
        raise MappingError(f"source mapping {text!r} not found: neither a file nor one of the shipped mappings "
                           f"({', '.join(shipped) or 'none'})")
    return path


def load_mapping(name_or_path: str | Path | dict) -> SourceMapping:
    """Read and check a mapping: every key known, every entity and spec well formed."""
    if isinstance(name_or_path, dict):
        raw, path, text = name_or_path, None, yaml.safe_dump(name_or_path, sort_keys=False)
    else:
        path = mapping_path(name_or_path)
        text = path.read_text()
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise MappingError(f"source mapping {path} is not valid YAML: {exc}") from exc
    where = f"source mapping {path or raw.get('name', '<dict>')}"
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    _known(raw, ("name", "description", "kind", "source", "requires", "legal_entity", "entities"), where)
    kind = raw.get("kind", "sql")
    if kind not in ("sql", "files"):
        raise MappingError(f"{where}: kind must be 'sql' or 'files', got {kind!r}")
    entities_raw = raw.get("entities") or {}
    unknown = [e for e in entities_raw if e not in ENTITIES]
    if unknown:
        raise MappingError(f"{where}: unknown entit(y/ies) {unknown}; known: {list(ENTITIES)}")
    if "sales_lines" not in entities_raw:
        raise MappingError(f"{where}: entities must include sales_lines")
    entities = {name: _entity(name, spec, where, kind) for name, spec in entities_raw.items()}
    legal_entity = raw.get("legal_entity") or {}
    if not isinstance(legal_entity, dict):
        raise MappingError(f"{where}: legal_entity must be a mapping")
    return SourceMapping(
        name=str(raw.get("name") or (path.stem if path else "mapping")), kind=kind, source=str(raw.get("source") or ""),
        path=path, entities=entities, legal_entity=legal_entity, requires=raw.get("requires") or {},
        description=str(raw.get("description") or ""), text=text,
    )


def _known(spec: dict, keys: tuple[str, ...], where: str) -> None:
    unknown = [k for k in spec if k not in keys]
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {unknown}; known: {list(keys)}")


def _entity(name: str, spec: dict, where: str, kind: str) -> EntityMapping:
    where = f"{where}, entity {name}"
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: expected a mapping, got {spec!r}")
    _known(spec, ("table", "query", "files", "format", "encoding", "separator", "header", "quote", "explode", "where",
                  "rows", "window", "window_by_day", "from", "group_by", "sort", "columns"), where)
    sources = [k for k in ("table", "query", "files", "from") if spec.get(k)]
    if len(sources) != 1:
        raise MappingError(f"{where}: give exactly one of table, query, files or from (got {sources or 'none'})")
    if spec.get("from") and spec["from"] != "sales_lines":
        raise MappingError(f"{where}: `from` can only be sales_lines (an entity derived from the sales lines)")
    if spec.get("from") and not spec.get("group_by"):
        raise MappingError(f"{where}: an entity derived from sales_lines needs `group_by` (the column its rows are keyed by)")
    if kind == "files" and (spec.get("table") or spec.get("query")):
        raise MappingError(f"{where}: a files mapping reads files, not table/query")
    if kind == "sql" and spec.get("files"):
        raise MappingError(f"{where}: a sql mapping reads tables or queries, not files")
    columns = spec.get("columns") or {}
    if not isinstance(columns, dict) or not columns:
        raise MappingError(f"{where}: `columns` must map entity-store columns to specs")
    schema = ENTITY_SCHEMAS[name]
    for target, col_spec in columns.items():
        if not target.startswith("_") and target not in schema:
            raise MappingError(f"{where}: {target!r} is not a column of {name}; its columns: {list(schema)} "
                               "(a working column starts with '_')")
        _check_spec(col_spec, f"{where}, column {target}", derived=bool(spec.get("from")))
    sort = spec.get("sort") or ()
    return EntityMapping(
        name=name, columns=columns, table=spec.get("table"), query=spec.get("query"), files=spec.get("files"),
        format=spec.get("format"), encoding=spec.get("encoding", "utf-8"), separator=spec.get("separator", ","),
        header=bool(spec.get("header", True)), quote=spec.get("quote", '"'), explode=spec.get("explode"),
        where=spec.get("where"), rows=spec.get("rows"), window=spec.get("window"),
        window_by_day=bool(spec.get("window_by_day", False)), derive_from=spec.get("from"),
        group_by=spec.get("group_by"), sort=tuple([sort] if isinstance(sort, str) else sort),
    )


_BASES = ("column", "constant", "expr", "polars", "lookup", "keywords", "days_since_previous", "basket_sequence", "agg")


def _check_spec(spec: Any, where: str, derived: bool = False) -> None:
    if isinstance(spec, str):
        return
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: a column spec is a source column name or a mapping, got {spec!r}")
    bases = [k for k in _BASES if k in spec]
    if len(bases) != 1:
        raise MappingError(f"{where}: give exactly one of {list(_BASES)} (got {bases or 'none'})")
    extra = {"lookup": (), "keywords": ("of", "default"), "days_since_previous": ("per", "order_by", "origin", "end"),
             "basket_sequence": ("per", "days_apart", "origin", "end"), "agg": ("of", "where")}.get(bases[0], ())
    _known(spec, (bases[0], *extra, *MODIFIERS), where)
    if bases[0] in ("days_since_previous", "basket_sequence") and "origin" in spec and "end" in spec:
        raise MappingError(f"{where}: day offsets count from `origin` (each customer's first order) or back from `end` "
                           "(each customer's last order), not both")
    if bases[0] == "basket_sequence":
        apart = spec.get("days_apart")
        if isinstance(apart, bool) or not isinstance(apart, (int, float)) or not apart > 0:
            raise MappingError(f"{where}: basket_sequence needs `days_apart`, the days between a customer's consecutive "
                               f"baskets (a positive number; the retailer's usual interval), got {apart!r}")
    if bases[0] == "agg" and (not derived or spec["agg"] not in AGGREGATES):
        raise MappingError(f"{where}: `agg` ({'one of ' + ', '.join(AGGREGATES)}) is for entities derived from sales_lines")
    if "cast" in spec and spec["cast"] not in CASTS:
        raise MappingError(f"{where}: cast {spec['cast']!r} is not one of {list(CASTS)}")
    if bases[0] == "polars":
        _polars(spec["polars"], where)


def _polars(text: str, where: str) -> pl.Expr:
    try:
        expr = eval(text, {"__builtins__": {}, "pl": pl, "datetime": datetime}, {})  # noqa: S307 - trusted config
    except Exception as exc:
        raise MappingError(f"{where}: polars expression {text!r} does not evaluate: {type(exc).__name__}: {exc}") from exc
    if not isinstance(expr, pl.Expr):
        raise MappingError(f"{where}: {text!r} is not a polars expression")
    return expr


# --------------------------------------------------------------------------- evaluation


def _base(spec: Any, frame_columns: list[str], where: str) -> pl.Expr:
    if isinstance(spec, str):
        spec = {"column": spec}
    if "column" in spec:
        if spec["column"] not in frame_columns:
            raise ExtractionError(f"{where}: the source has no column {spec['column']!r} (it has: "
                                  f"{', '.join(c for c in frame_columns if not c.startswith('__'))})")
        return pl.col(spec["column"])
    if "constant" in spec:
        return pl.lit(spec["constant"])
    if "expr" in spec:
        try:
            return pl.sql_expr(spec["expr"])
        except Exception as exc:
            raise ExtractionError(f"{where}: SQL expression {spec['expr']!r} does not parse: {exc}") from exc
    if "polars" in spec:
        return _polars(spec["polars"], where)
    if "lookup" in spec:
        lk = spec["lookup"]
        of = _base(lk.get("of"), frame_columns, where).cast(pl.String)
        if lk.get("upper"):
            of = of.str.to_uppercase()
        values = {str(k): v for k, v in (lk.get("values") or {}).items()}
        expr = pl.when(of.is_in(list(values))).then(of.replace(values)) if values else None
        for prefix, value in (lk.get("prefixes") or {}).items():
            cond = of.str.starts_with(str(prefix))
            expr = pl.when(cond).then(pl.lit(value)) if expr is None else expr.when(cond).then(pl.lit(value))
        default = pl.lit(lk.get("default"), pl.String) if lk.get("default") is not None else of
        return default if expr is None else expr.otherwise(default)
    if "keywords" in spec:
        text = _base(spec.get("of"), frame_columns, where).cast(pl.String).str.to_uppercase()
        expr = None
        for label, words in spec["keywords"].items():
            pattern = r"(?:^|[^A-Z-])(?:" + "|".join(re.escape(str(w).upper()).replace(r"\ ", " ") for w in words) + r")(?:$|[^A-Z-])"
            cond = text.str.contains(pattern)
            expr = pl.when(cond).then(pl.lit(label)) if expr is None else expr.when(cond).then(pl.lit(label))
        return expr.otherwise(pl.lit(spec.get("default"), pl.String))
    if "days_since_previous" in spec:
        days = _base(spec["days_since_previous"], frame_columns, where).cast(pl.Float64).fill_null(0)
        per, order = spec.get("per"), spec.get("order_by")
        offset = days.cum_sum().over(per, order_by=order) if per else days.cum_sum()
        # Each customer's offsets run on its own clock. Anchored at their last orders, "now" is
        # every customer's present: a temporal test window holds each one's latest orders, and
        # "recent" is recent for all. Anchored at their first orders, it would hold only the
        # longest histories, and "trending" would mean the late orders of loyal customers.
        return _day_offsets(spec, offset, days.sum().over(per) if per else days.sum())
    if "basket_sequence" in spec:
        # a basket's number in its customer's sequence: its lines share it (a rank, not a running sum).
        # Numbers read as text ("9", "10") rank as numbers, not as text; other text as text.
        number = _base(spec["basket_sequence"], frame_columns, where)
        order = pl.when(number.is_not_null()).then(pl.struct(number.cast(pl.Float64, strict=False).alias("as_number"),
                                                              number.alias("as_given")))
        per = spec.get("per")
        position = order.rank("dense").over(per) if per else order.rank("dense")
        count = number.drop_nulls().n_unique()
        count = count.over(per) if per else count
        step = float(spec["days_apart"])
        return _day_offsets(spec, (position - 1) * step, (count - 1) * step)
    raise ExtractionError(f"{where}: cannot evaluate {spec!r}")


def _day_offsets(spec: dict, offset: pl.Expr, total: pl.Expr) -> pl.Expr:
    """Timestamps from day offsets counted from each customer's first order: on `origin`, or shifted
    back by the customer's `total` (its last order's offset) so that its last order falls on `end`."""
    anchor = spec.get("origin", "2000-01-01")
    if "end" in spec:
        offset, anchor = offset - total, spec["end"]
    return pl.lit(datetime.fromisoformat(str(anchor))) + pl.duration(microseconds=(offset * 86_400_000_000).cast(pl.Int64))


def _parse_formats(values: pl.Expr, formats: list[str]) -> pl.Expr:
    """The first layout that reads a value wins; only the leftovers try the next one."""
    text = values.cast(pl.String).str.strip_chars()
    out = text.str.strptime(pl.Datetime("us"), formats[0], strict=False)
    for fmt in formats[1:]:
        out = pl.coalesce(out, text.str.strptime(pl.Datetime("us"), fmt, strict=False))
    return out


def _cast(expr: pl.Expr, spec: dict, dtype: pl.DataType | None, have: pl.DataType) -> pl.Expr:
    """The value as the entity store's type (or the spec's `cast:`), non-strict: what does not convert
    becomes null, and `evaluate` reports it with its rows."""
    cast = spec.get("cast")
    if cast == "id":
        # spreadsheets write 17850 as 17850.0; an empty id is no id
        return (expr.cast(pl.String).str.strip_chars().str.replace(r"^(\d+)\.0*$", "${1}").replace("", None))
    target = CASTS[cast] if cast else dtype
    if spec.get("format") and target in (pl.Date, pl.Datetime("us"), None):
        formats = spec["format"] if isinstance(spec["format"], list) else [spec["format"]]
        out = _parse_formats(expr, formats)
        return out.dt.date() if target == pl.Date else out
    if target is None:
        return expr
    if have == pl.String and isinstance(target, pl.Datetime):
        return expr.str.strip_chars().str.to_datetime(time_unit="us", strict=False)
    if have == pl.String and target == pl.Date:
        return expr.str.strip_chars().str.slice(0, 10).str.to_date(strict=False)
    if have == pl.String and target in (pl.Float64, pl.Int64):
        return expr.str.strip_chars().cast(target, strict=False)
    if have == pl.String and target == pl.Boolean:
        low = expr.str.strip_chars().str.to_lowercase()
        return (pl.when(low.is_in(["true", "t", "yes", "y", "1"])).then(True)
                .when(low.is_in(["false", "f", "no", "n", "0"])).then(False).otherwise(None))
    if isinstance(have, pl.Datetime) and isinstance(target, pl.Datetime):
        if have.time_zone:
            return expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.cast_time_unit("us")
        return expr.dt.cast_time_unit("us")
    if isinstance(have, pl.Datetime) and target == pl.Date:
        return expr.dt.date()
    if have == target:
        return expr
    return expr.cast(target, strict=False)


def _examples(bad: pl.DataFrame, column: str) -> str:
    where = []
    for row in bad.head(3).iter_rows(named=True):
        at = f"{row['__file']} line {row['__line']}" if row.get("__file") is not None else f"row {row['__row'] + 1}"
        where.append(f"{at}: {row[column]!r}")
    return "; ".join(where)


def evaluate(frame: pl.DataFrame, entity: EntityMapping, where: str) -> pl.DataFrame:
    """The entity's columns from the source frame, in the entity-store schema (working columns dropped).

    A value the mapping cannot convert (text that is no number, no date in the given formats) and a
    `required` column left null are errors naming the entity, the column, the rule and rows."""
    schema = ENTITY_SCHEMAS[entity.name]
    if entity.explode:
        if entity.explode not in frame.columns:
            raise ExtractionError(f"{where}: entity {entity.name}: explode: the source has no column {entity.explode!r}")
        frame = frame.explode(entity.explode)
    if "__row" not in frame.columns:
        frame = frame.with_row_index("__row")
    if entity.rows:
        try:
            frame = frame.filter(pl.sql_expr(entity.rows))
        except Exception as exc:
            raise ExtractionError(f"{where}: `rows` filter {entity.rows!r} failed: {exc}") from exc
    for target, spec in entity.columns.items():
        spec_d = {"column": spec} if isinstance(spec, str) else spec
        at = f"{where}, column {entity.name}.{target}"
        try:
            frame = frame.with_columns(_base(spec_d, frame.columns, at).alias("__in"))
        except ExtractionError:
            raise
        except Exception as exc:
            raise ExtractionError(f"{at}: {_describe(spec)} fails on the source: {type(exc).__name__}: {exc}") from exc
        have = frame.schema["__in"]
        dtype = schema.get(target)
        out = frame.select(_cast(pl.col("__in"), spec_d, dtype, have).alias("__out"))["__out"]
        frame = frame.with_columns(out)
        if spec_d.get("timezone"):
            frame = frame.with_columns(pl.col("__out").dt.replace_time_zone(spec_d["timezone"], ambiguous="earliest",
                                                                          non_existent="null")
                                       .dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        lost = frame.filter(pl.col("__out").is_null() & pl.col("__in").is_not_null())
        if have == pl.String:
            lost = lost.filter(pl.col("__in").str.strip_chars() != "") if spec_d.get("cast") != "id" else lost.clear()
        if lost.height:
            kind = spec_d.get("cast") or _TYPE_NAMES.get(str(dtype), str(dtype))
            raise ExtractionError(f"{at}: {lost.height} value(s) of {_describe(spec)} do not read as {kind} "
                                  f"({_examples(lost, '__in')})")
        if spec_d.get("required"):
            nulls = frame.filter(pl.col("__out").is_null())
            if nulls.height:
                raise ExtractionError(f"{at}: rule required: {nulls.height} row(s) without a value of "
                                      f"{_describe(spec)} ({_examples(nulls, '__in')})")
        frame = frame.rename({"__out": target}, strict=False) if target not in frame.columns else \
            frame.with_columns(pl.col("__out").alias(target)).drop("__out")
        frame = frame.drop("__in")
    return frame


def _describe(spec: Any) -> str:
    if isinstance(spec, str):
        return f"source column {spec!r}"
    for key in _BASES:
        if key in spec:
            return f"{key} {spec[key]!r}" if key != "keywords" else "keywords"
    return repr(spec)


def conform_entity(frame: pl.DataFrame, name: str, where: str) -> pl.DataFrame:
    """The entity's schema from an evaluated frame: absent optional columns are null, and the
    columns a table cannot do without are an error."""
    schema = ENTITY_SCHEMAS[name]
    missing = [c for c in REQUIRED.get(name, ()) if c not in frame.columns]
    if missing:
        raise ExtractionError(f"{where}: entity {name} maps no {', '.join(missing)} (a {name} row needs it)")
    cols = []
    for col, dtype in schema.items():
        if col in frame.columns:
            cols.append(pl.col(col).cast(dtype, strict=False) if frame.schema[col] != dtype else pl.col(col))
        else:
            cols.append(pl.lit(None, dtype).alias(col))
    return frame.select(cols + [c for c in ("__row", "__file", "__line") if c in frame.columns])


def derive(lines: pl.DataFrame | pl.LazyFrame, entity: EntityMapping, where: str) -> pl.DataFrame:
    """An entity keyed by one column of the sales lines' working frame: one row per distinct value
    (sorted), its `agg` columns aggregated over that value's rows, then the other columns in order.
    Lines read out of core (a scan) are aggregated by polars' streaming engine."""
    key = entity.group_by
    lazy = isinstance(lines, pl.LazyFrame)
    columns = lines.collect_schema().names() if lazy else lines.columns
    if key not in columns:
        raise ExtractionError(f"{where}: group_by {key!r} is not a column of the sales lines' source or mapping")
    frame = lines
    if entity.rows:
        frame = frame.filter(pl.sql_expr(entity.rows))
    out = frame.select(key).unique().sort(key)
    later = {}
    for target, spec in entity.columns.items():
        if isinstance(spec, dict) and "agg" in spec:
            at = f"{where}, column {entity.name}.{target}"
            value = _base(spec.get("of", key), columns, at)
            keep = pl.sql_expr(spec["where"]).fill_null(False) if spec.get("where") else pl.lit(True)
            sub = frame.select(pl.col(key), value.alias("__v"), keep.alias("__keep")).filter(pl.col("__keep")).drop("__keep")
            sub = sub.filter(pl.col("__v").is_not_null())
            how = spec["agg"]
            if how == "mode":  # the most frequent value; ties to the smallest
                agg = (sub.group_by(key, "__v").len().sort([key, "len", "__v"], descending=[False, True, False])
                       .group_by(key, maintain_order=True).first().select(key, "__v"))
            else:
                agg = sub.group_by(key).agg(getattr(pl.col("__v"), how if how != "count" else "len")())
            out = out.join(agg.rename({"__v": target}), on=key, how="left", maintain_order="left")
        else:
            later[target] = spec
    if lazy:
        out = out.collect(engine="streaming")
    if later:
        rest = EntityMapping(name=entity.name, columns=later)
        out = evaluate(out, rest, where)
    return out


def apply_sort(frame: pl.DataFrame, entity: EntityMapping) -> pl.DataFrame:
    return frame.sort(list(entity.sort), maintain_order=True) if entity.sort else frame
