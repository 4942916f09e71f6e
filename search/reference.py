"""The configuration reference, generated from the config dataclasses: every key with its type,
default and one-line help, so that the page (``docs/configuration.md``) cannot drift from the code.

A key's help is its field's comment in the dataclass: the ``#:`` lines above it or the ``#``
comment after it (the convention Sphinx's autodoc reads). ``python -m search.reference --write``
regenerates the page; ``tests/search/test_reference.py`` fails when page and code differ, or when
a field has no help.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
#: Config fields that are not keys of the file: the task's name and section are read apart
_NOT_KEYS = {"task_name", "task", "task_dir", "modules", "units"}


def field_help(cls: type) -> dict[str, str]:
    """Each field's help: its ``#:`` comment lines above it, or its trailing ``#`` comment (in the
    class that declares it: a base class's fields keep their help)."""
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass) and klass is not cls:
            helps.update(_own_help(klass))
    return {**helps, **{k: v for k, v in _own_help(cls).items() if v or k not in helps}}


def _own_help(cls: type) -> dict[str, str]:
    source = textwrap.dedent(inspect.getsource(cls))
    helps: dict[str, str] = {}
    pending: list[str] = []
    line_tokens: list[tokenize.TokenInfo] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and not line_tokens:
            pending = [*pending, token.string[2:].strip()] if token.string.startswith("#:") else []
            continue
        if token.type in (tokenize.NEWLINE, tokenize.NL):
            name = _field_name(line_tokens)
            if name is not None:
                trailing = [t.string.lstrip("#").strip() for t in line_tokens if t.type == tokenize.COMMENT]
                helps[name] = " ".join(pending) or " ".join(trailing)
            if line_tokens:
                pending = []
            line_tokens = []
            continue
        if token.type not in (tokenize.INDENT, tokenize.DEDENT):
            line_tokens.append(token)
    return helps


def _field_name(tokens: list[tokenize.TokenInfo]) -> str | None:
    """The field a class-body line declares (``name: type = default``), if it is one."""
    code = [t for t in tokens if t.type != tokenize.COMMENT]
    if len(code) >= 2 and code[0].type == tokenize.NAME and code[1].string == ":" and code[0].start[1] == 4:
        return code[0].string
    return None


def type_name(hint: Any) -> str:
    """A field's type as a config file writes it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin in (tuple, list):
        inner = args[0] if args else Any
        return f"list of {type_name(inner)}s"
    if origin is dict:
        return "mapping"
    return {bool: "true/false", int: "integer", float: "number", str: "string"}.get(hint, "see help")


def default_text(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(see help)"
    if dataclasses.is_dataclass(value):
        return "(a section)"
    return _yaml(value)


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return value if value else '""'
    return f"{value:g}" if isinstance(value, float) else str(value)


def sections() -> list[tuple[str, type, str]]:
    """``(key prefix, dataclass, what the section is)``, in the order a config file has them."""
    from search.config import Config, SearchConfig, TrackingConfig
    from spaces import SpaceConfig
    from trainables.pretrain import PretrainConfig
    from trainables.tasks import BUILT_IN, get_task

    out: list[tuple[str, type, str]] = [("", Config, "the file's own keys and its sections")]
    for name in BUILT_IN:
        out.append(("task.", get_task(name).Config, (f"`task: {{name: {name}}}`, the built-in {name} task (a task of "
                    "your own reads the keys of its `Config`)")))
    out.append(("pretrain.", PretrainConfig, "the full-precision model"))
    out.append(("search.", SearchConfig, "how the search runs"))
    for field in dataclasses.fields(SearchConfig):
        hint = typing.get_type_hints(SearchConfig)[field.name]
        if dataclasses.is_dataclass(hint):
            out.append((f"search.{field.name}.", hint, (inspect.getdoc(hint) or "").splitlines()[0]))
    out.append(("space.", SpaceConfig, "what is searched and what is fixed"))
    out.append(("tracking.", TrackingConfig, "MLflow"))
    return out


def missing_help() -> list[str]:
    """The keys with no help: each field of a config dataclass must say what it does."""
    return [f"{prefix}{f.name}" for prefix, cls, _ in sections() for f in dataclasses.fields(cls)
            if f.init and f.name not in _NOT_KEYS and not dataclasses.is_dataclass(typing.get_type_hints(cls)[f.name])
            and not field_help(cls).get(f.name)]


def render() -> str:
    lines = ["# Configuration reference", "",
             ("Generated from the config dataclasses by `python -m search.reference --write`; do not edit by hand "
             "(a test compares this page with the code). A config file is YAML; every key is optional unless its "
             "help says otherwise; an unknown key or a wrong value is refused with one line naming it (exit 2). "
             "`configs/quickstart.yaml` is a commented example."), ""]
    for prefix, cls, what in sections():
        title = f"`{prefix.rstrip('.')}`" if prefix else "Top level"
        lines += [f"## {title}: {what}", "", "| key | type | default | what it does |", "| --- | --- | --- | --- |"]
        hints, helps = typing.get_type_hints(cls), field_help(cls)
        for field in dataclasses.fields(cls):
            if not field.init or field.name in _NOT_KEYS:
                continue
            if dataclasses.is_dataclass(hints[field.name]):
                text = f"a section: see `{prefix}{field.name}` below"
                lines.append(f"| `{prefix}{field.name}` | section | | {text} |")
                continue
            text = helps.get(field.name, "").replace("|", "\\|")
            lines.append(f"| `{prefix}{field.name}` | {type_name(hints[field.name])} | `{default_text(field)}` "
                         f"| {text} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {PAGE.relative_to(Path.cwd()) if PAGE.is_relative_to(Path.cwd()) else PAGE}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
