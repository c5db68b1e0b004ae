"""docs/config.md stays true to the code: every key documented, every example valid."""

import re
from pathlib import Path

import msgspec
import pytest

from sipmask.config import Config, _struct_of, parse_config

DOC = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()


def keys(struct: type[msgspec.Struct], path: str = "") -> list[tuple[str, str]]:
    """(section path, key) of every key of the configuration."""
    found = []
    for field in msgspec.structs.fields(struct):
        inner = _struct_of(field.type)
        args = getattr(field.type, "__args__", ())
        if inner is None and args and args[-1] is Ellipsis:
            inner = _struct_of(args[0])
        if inner is not None:
            found += keys(inner, f"{path}.{field.name}" if path else field.name)
        else:
            found.append((path, field.name))
    return found


@pytest.mark.parametrize("section, key", keys(Config), ids=lambda v: v)
def test_every_key_is_documented_in_its_section(section, key):
    heading = {"pools": "[[pools]]", "trunks": "[[trunks]]"}.get(section)
    if heading is None:
        top, _, rest = section.partition(".")
        base = {"trunks": "trunks"}.get(top, top)
        heading = f"[{base}.{rest}]" if rest else f"[{top}]"
    start = DOC.index(f"## `{heading}`") if f"## `{heading}`" in DOC else DOC.index(
        f"### `{heading}`")
    end = DOC.find("\n## ", start + 1)
    assert f"| `{key}` |" in DOC[start:end], f"{section}.{key} missing under {heading}"


@pytest.mark.parametrize("block", re.findall(r"```toml\n(.*?)```", DOC, re.S))
def test_documented_examples_are_valid(block):
    parse_config(block, env={})
