"""The configuration reference (docs/configuration.md) is generated from the config dataclasses:
the page and the code cannot differ, and no key goes without its one-line help."""
from __future__ import annotations

from search import reference


def test_the_reference_page_is_the_one_the_code_generates():
    assert reference.PAGE.read_text() == reference.render(), \
        "docs/configuration.md is stale: regenerate it with python -m search.reference --write"


def test_every_key_has_its_help_in_the_dataclass_that_defines_it():
    assert reference.missing_help() == []


def test_help_is_read_from_the_comment_above_a_field_or_after_it():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Settings:
        #: two lines
        #: of help
        above: int = 1
        after: str = "x"  # its help
        bare: float = 0.5

    assert reference.field_help(Settings) == {"above": "two lines of help", "after": "its help", "bare": ""}
    assert reference.type_name(int | None) == "integer or null"
    assert reference.type_name(tuple[float, ...]) == "list of numbers"
