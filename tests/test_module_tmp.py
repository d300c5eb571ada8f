"""The module_tmp fixture (tests/conftest.py) bounds the suite's disk: a module's large folders go when the
module ends, and stay when one of its tests failed, to look at."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INNER_MODULE = """
from pathlib import Path

def test_writes(module_tmp):
    (module_tmp / "big").write_bytes(b"x" * 1000)
    Path("{record}").write_text(str(module_tmp))

def test_outcome(module_tmp):
    assert {passes}
"""


@pytest.mark.slow
@pytest.mark.parametrize("passes", [True, False])
def test_a_modules_folder_goes_when_it_ends_unless_a_test_failed(pytester: pytest.Pytester, passes: bool):
    pytester.makeconftest("from tests.conftest import module_tmp  # noqa: F401\n")
    record = pytester.path / "folder.txt"
    pytester.makepyfile(test_inner=INNER_MODULE.format(record=record, passes=passes))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2 if passes else 1, failed=0 if passes else 1)
    folder = Path(record.read_text())
    assert folder.name.startswith("test_inner")
    assert folder.exists() is not passes
