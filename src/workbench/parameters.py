"""Notebook parameters typed by the notebook: `-p` values and YAML values become what the
`parameters` cell declares, or a clear error naming the parameter, the value and the expected type.

YAML alone guesses types from the text: `2011-11-09` becomes a date (which JSON cannot carry into
the notebook), `0123` the octal 83, `no` False. Here the declaring notebook decides, from the
cell's annotation or type comment (`max_basket_size = None  # type: Optional[int]`) or, without
one, from the default's literal (`k = 10` is an int, `legal_entity = "USRT"` a string):

* strings keep the text as written (`0123` stays "0123", `2011-11-09` stays "2011-11-09");
* booleans accept true/false, yes/no, 1/0 (any case), nothing else;
* integers and numbers are parsed strictly (decimal; numbers must be finite);
* lists and mappings are read as YAML (`[sar, ease]`, `{sar: {similarity: lift}}`);
* `Optional[...]` also accepts null, ~, None or an empty value;
* a parameter whose default is None and that declares no type is read as YAML, dates kept as text.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

TRUE = {"true", "yes", "1"}
FALSE = {"false", "no", "0"}
NULLS = {"", "null", "~", "none"}
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_EXPECTED = {
    "str": "a string",
    "bool": "a boolean (true/false, yes/no, 1/0)",
    "int": "an integer",
    "float": "a number",
    "list": "a list, e.g. [a, b]",
    "dict": "a mapping, e.g. {name: value}",
}


class ParameterError(ValueError):
    """A parameter value that does not fit the type its notebook declares."""


@dataclass(frozen=True)
class Raw:
    """A value as the user wrote it: the scalar's text (None for a YAML list or mapping), whether it
    was quoted, and what YAML makes of it."""

    text: str | None
    quoted: bool
    value: Any

    @classmethod
    def from_cli(cls, text: str) -> "Raw":
        stripped = text.strip()
        quoted = len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\""
        value = yaml.safe_load(text) if stripped else ""
        if isinstance(value, (list, dict)):
            return cls(None, False, value)
        return cls(stripped[1:-1] if quoted else stripped, quoted, value)


@dataclass(frozen=True)
class Declared:
    """A parameter's type as the notebook declares it: base (str, bool, int, float, list, dict or
    None = undeclared) and whether None is allowed."""

    base: str | None
    optional: bool
    source: str  # the declaration, for messages

    @classmethod
    def from_inspection(cls, spec: dict) -> "Declared":
        """From `papermill.inspect_notebook`'s entry: annotation / type comment, else the default."""
        annotation = str(spec.get("inferred_type_name") or "None").strip()
        default = str(spec.get("default", "")).strip()
        source = f"{spec.get('name')} = {default}" + (f"  # type: {annotation}" if annotation != "None" else "")
        if annotation != "None":
            optional = annotation.startswith("Optional[")
            inner = annotation[len("Optional[") : -1] if optional else annotation
            base = inner.split("[", 1)[0].strip().lower()
            base = {"list": "list", "dict": "dict", "sequence": "list", "mapping": "dict"}.get(base, base)
            if base not in _EXPECTED:
                base = None
            return cls(base, optional or base is None, source)
        try:
            value = ast.literal_eval(default)
        except (ValueError, SyntaxError):
            return cls(None, True, source)
        for kind in (bool, int, float, str, list, dict):  # bool before int: True is an int too
            if isinstance(value, kind):
                return cls(kind.__name__, False, source)
        return cls(None, True, source)


def load_yaml_parameters(text: str, where: str) -> dict:
    """A YAML document's top level, with the `parameters:` mapping's scalars kept as `Raw` text."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        document = loader.construct_document(node)
        if isinstance(document, dict) and isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == "parameters" and isinstance(value_node, yaml.MappingNode):
                    document["parameters"] = {
                        loader.construct_object(k, deep=True): _raw(loader, v) for k, v in value_node.value
                    }
        return document
    finally:
        loader.dispose()


def _raw(loader, node) -> Raw:
    value = loader.construct_object(node, deep=True)
    if isinstance(node, yaml.ScalarNode):
        return Raw(node.value, node.style in ("'", '"'), value)
    return Raw(None, False, value)


def coerce(name: str, given: Any, declared: Declared) -> Any:
    """`given` (a `Raw`, or a Python value from code) as the declared type; ParameterError otherwise."""
    raw = given if isinstance(given, Raw) else _from_python(given)
    if raw.text is not None and declared.optional and not raw.quoted and raw.text.strip().lower() in NULLS:
        # `-p start=` keeps meaning "empty" for a parameter that takes any value
        return "" if declared.base is None and raw.text.strip() == "" else None
    if raw.text is None and raw.value is None and declared.optional:
        return None
    base = declared.base
    if base is None:
        return _plain(raw)
    if base in ("list", "dict"):
        kind = list if base == "list" else dict
        if isinstance(raw.value, kind):
            return _jsonable(raw.value)
        return _fail(name, raw, declared)
    if raw.text is None:
        return _fail(name, raw, declared)
    text = raw.text.strip()
    if base == "str":
        return raw.text
    if base == "bool":
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
    elif base == "int" and _INT.match(text):
        return int(text, 10)
    elif base == "float" and (_FLOAT.match(text) or _INT.match(text)):
        number = float(text)
        if math.isfinite(number):
            return number
    return _fail(name, raw, declared)


def _fail(name: str, raw: Raw, declared: Declared):
    shown = raw.text if raw.text is not None else raw.value
    expected = _EXPECTED[declared.base] + (" or null" if declared.optional else "")
    raise ParameterError(f"parameter {name!r}: {shown!r} is not {expected} (the notebook declares `{declared.source}`)")


def _from_python(value: Any) -> Raw:
    """Values given from code (PipelineConfig(parameters=...)): strings are text, the rest as is."""
    if isinstance(value, str):
        return Raw(value, True, value)
    if isinstance(value, bool):
        return Raw(str(value).lower(), False, value)
    if isinstance(value, (int, float)):
        return Raw(repr(value), False, value)
    if isinstance(value, (dt.date, dt.datetime)):
        return Raw(value.isoformat(), False, value)
    if value is None:
        return Raw(None, False, None)
    return Raw(None, False, value)


def _plain(raw: Raw) -> Any:
    """An undeclared type: YAML's reading, except what YAML would silently misread."""
    value = raw.value
    if raw.text is not None and not raw.quoted:
        text = raw.text.strip()
        if text == "":
            return ""
        if isinstance(value, (dt.date, dt.datetime)):
            return text  # dates stay the text as written
        if isinstance(value, int) and not isinstance(value, bool) and not _INT.match(text):
            return text  # 0x1F, 1_000, 1:30 (sexagesimal): not what anyone means by a number
        if isinstance(value, int) and not isinstance(value, bool) and re.match(r"^[+-]?0[0-9]", text):
            return text  # 0123: an id, not octal 83
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k) if isinstance(k, (dt.date, dt.datetime)) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
