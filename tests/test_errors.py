"""Every user-facing error has its own code, is explained in docs/errors.md, and option problems are ConfigErrors."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import traits.errors as errors_mod
from pipeline import errors as public
from traits.errors import ConfigError, FinerTraitsError

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def error_classes() -> list[type[FinerTraitsError]]:
    return [c for _, c in inspect.getmembers(errors_mod, inspect.isclass) if issubclass(c, FinerTraitsError)]


def test_codes_are_unique_and_documented() -> None:
    classes = error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), codes
    rows = dict(re.findall(r"^\| (FT\d{3}) \| `(\w+)` \|", DOC.read_text(), re.M))
    assert rows == {c.code: c.__name__ for c in classes}


def test_public_module_reexports_every_error() -> None:
    assert {c.__name__ for c in error_classes()} <= set(public.__all__)


@pytest.mark.parametrize("cls", [c for c in error_classes() if issubclass(c, ConfigError) and c is not ConfigError])
def test_option_problems_are_config_errors_with_their_own_code(cls: type[ConfigError]) -> None:
    with pytest.raises(ConfigError) as info:
        raise cls("problem", "fix")
    assert str(info.value) == f"[{cls.code}] problem\n  How to fix: fix" and cls.code != ConfigError.code
