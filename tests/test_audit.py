"""tools/audit.py: `make audit` never reports "no known vulnerabilities" for packages it did not
check (pip-audit does when its service knows none of them)."""

from __future__ import annotations

from tools.audit import CLEAN, NOT_CHECKED, VULNERABLE, summarise

SKIPPED = {"name": "numpy", "skip_reason": "Dependency not found on PyPI and could not be audited"}


def test_nothing_checked_is_not_a_clean_bill(capsys):
    assert summarise([SKIPPED, {**SKIPPED, "name": "pandas"}], "pypi") == NOT_CHECKED
    captured = capsys.readouterr()
    assert "NOT CHECKED" in captured.err and "no known vulnerabilities" not in captured.out


def test_vulnerable_and_clean_packages_are_told_apart(capsys):
    clean = {"name": "pillow", "version": "12.0", "vulns": []}
    bad = {"name": "jinja2", "version": "2.0", "vulns": [{"id": "PYSEC-2019-217"}]}
    assert summarise([clean, bad, SKIPPED], "pypi") == VULNERABLE
    assert "VULNERABLE jinja2 2.0: PYSEC-2019-217" in capsys.readouterr().out
    assert summarise([clean, SKIPPED], "pypi") == CLEAN
    out = capsys.readouterr().out
    assert "not checked: 1 package(s) (numpy)" in out and "in the 1 packages checked" in out
