"""Optional test dependencies (torch, peft, ...): marked tests get them, the rest run without them.

A test that needs one says `@pytest.mark.requires("torch")`; where the module is not installed
it is skipped with the reason. So that a forgotten mark cannot hide behind an installed module,
the main test process runs as if the optional modules were not installed: tests/conftest.py
blocks their import from the start (`block`), so transformers, scipy and tfft see exactly what a
machine without them shows. An unmarked test that needs one then fails, naming the mark to add.

The marked tests run in one pytest subprocess with the modules available; their reports are
replayed in the main session one by one (as pytest-xdist replays its workers'), so each shows,
passes and fails under its own name.
"""

import importlib.machinery
import json
import os
import subprocess
import sys
import tempfile

import pytest

# import name -> how to install it
OPTIONAL_MODULES = {
    "torch": "pip install torch==2.13.0",
    "peft": "pip install -e \".[hf-peft]\" after torch==2.13.0",
    "seqeval": "pip install seqeval",
    "kserve": "pip install kserve",
    "onnxruntime": "pip install onnxruntime",
    "tf2onnx": "pip install tf2onnx",
}
_REPORTS_ENV = "TFFT_TESTS_OPTIONAL_REPORTS"  # set in the subprocess: where it writes its reports
# Comma-separated modules to treat as not installed at all (tests of this file simulate a machine
# without torch with it).
_MISSING_ENV = "TFFT_TESTS_PRETEND_MISSING"
_PATH_FINDER = importlib.machinery.PathFinder
_REPORTS = os.environ.get(_REPORTS_ENV)  # read once: tests may change os.environ


class _WithoutOptionalModules(importlib.machinery.PathFinder):
    """sys.path's finder, blind to the optional modules: find_spec says absent, import raises."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] in OPTIONAL_MODULES:
            return None
        return super().find_spec(fullname, path, target)


def in_subprocess():
    return _REPORTS is not None


def block():
    """Makes the optional modules look uninstalled in this process (before anything imports them)."""
    if in_subprocess():
        return
    loaded = sorted(m for m in OPTIONAL_MODULES if m in sys.modules)
    if loaded:
        raise RuntimeError(f"optional modules imported before tests/conftest.py could block them: {loaded}")
    sys.meta_path[:] = [_WithoutOptionalModules if f is _PATH_FINDER else f for f in sys.meta_path]


def installed(module):
    """Whether `module` is installed, whatever `block` hides."""
    if module in os.environ.get(_MISSING_ENV, "").split(","):
        return False
    return module in sys.modules or _PATH_FINDER.find_spec(module) is not None


def required(item):
    return [module for mark in item.iter_markers("requires") for module in mark.args]


def missing_module(error):
    """The optional module whose absence raised `error` (or an exception it came from), or None."""
    while error is not None:
        if isinstance(error, ImportError) and (error.name or "").partition(".")[0] in OPTIONAL_MODULES:
            return error.name.partition(".")[0]
        text = str(error)
        if isinstance(error, pytest.skip.Exception) and "could not import" in text:  # importorskip
            return next((m for m in OPTIONAL_MODULES if f"could not import '{m}" in text), None)
        error = error.__cause__ or error.__context__
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(*modules): needs these optional modules; skipped with the reason when one is absent")
    config._optional_reports = None


def pytest_collection_modifyitems(config, items):
    for item in items:
        unknown = [module for module in required(item) if module not in OPTIONAL_MODULES]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: requires({', '.join(map(repr, unknown))}): "
                                    "not in OPTIONAL_MODULES (tests/optional_modules.py)")
        missing = [module for module in required(item) if not installed(module)]
        if missing:
            reason = "needs " + ", ".join(f"{module} ({OPTIONAL_MODULES[module]})" for module in missing)
            item.add_marker(pytest.mark.skip(reason=reason))
    config._optional_items = [item.nodeid for item in items
                              if required(item) and all(installed(m) for m in required(item))]


def _run_marked_tests(config):
    """Runs every marked test in one subprocess with the optional modules; returns its reports by node id."""
    with tempfile.TemporaryDirectory() as tmp:
        reports = os.path.join(tmp, "reports.jsonl")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *config._optional_items]
        subprocess.run(command, cwd=str(config.rootpath), env={**os.environ, _REPORTS_ENV: reports},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        by_node = {}
        if os.path.exists(reports):
            with open(reports, encoding="utf-8") as f:
                for line in f:
                    data = json.loads(line)
                    by_node.setdefault(data["nodeid"], []).append(data)
    return by_node


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Main process: a marked test's outcome comes from the subprocess run."""
    if in_subprocess() or item.nodeid not in item.config._optional_items:
        return None
    config = item.config
    if config._optional_reports is None:
        config._optional_reports = _run_marked_tests(config)
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = config._optional_reports.get(item.nodeid, [])
    if not any(data["when"] == "call" or data["outcome"] != "passed" for data in reports):
        # The subprocess died before this test ran to its end: a failure here, not a silent pass.
        reports.append(config.hook.pytest_report_to_serializable(config=config, report=pytest.TestReport(
            item.nodeid, item.location, {}, "failed", "the subprocess running the tests marked requires(...) "
            "gave no result for this test: run it alone to see why", "call")))
    for data in reports:
        report = config.hook.pytest_report_from_serializable(config=config, data=data)
        item.ihook.pytest_runtest_logreport(report=report)
    # Tear down what the next test does not share (module fixtures of the test before), as
    # pytest's own protocol would have.
    item.session._setupstate.teardown_exact(nextitem)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_runtest_logreport(report):
    """Subprocess: write each report for the main session to replay."""
    if in_subprocess():
        config = _CONFIG[0]
        data = config.hook.pytest_report_to_serializable(config=config, report=report)
        with open(_REPORTS, "a", encoding="utf-8") as f:
            f.write(json.dumps(data) + "\n")


_CONFIG = []


def pytest_sessionstart(session):
    _CONFIG[:] = [session.config]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Main process: an unmarked test that needed a blocked optional module fails, naming the mark."""
    outcome = yield
    report = outcome.get_result()
    if in_subprocess() or call.excinfo is None or report.passed:
        return
    module = missing_module(call.excinfo.value)
    if module is None or not installed(module):
        return  # really not installed: as on a user's machine
    message = (f"{item.nodeid} needs the optional module {module!r} but is not marked "
               f"@pytest.mark.requires({module!r}): where {module} is not installed it would "
               f"{'skip silently' if report.skipped else 'error'} instead of skipping with a reason")
    if report.skipped:  # a skip's longrepr is (path, line, reason): there is no traceback to keep
        report.longrepr = message
    else:
        report.sections.append(("optional module", message))
    report.outcome = "failed"
