"""Suite-wide rules: under ``CI=true`` nothing may skip, and no test leaves logging off.

A skipped test is green but tests nothing, so on CI every skip (a missing
tool, data set or privilege) is turned into a failure that says why.
"""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(autouse=True)
def _logging_back_on():
    """A benchmark's ``main`` run in process may switch logging off for its own output
    (``logging.disable``); that must not silence the tests that follow it."""
    yield
    logging.disable(logging.NOTSET)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true: skipping is not allowed here ({reason})"
