"""The scorecard `make grade` prints: a pytest plugin, loaded with
`--scorecard` (tests/conftest.py), which tools/lab.py gives.

After the run it prints, for the one stage under test, each promise of
the lesson (tests/support/promises.py) with passed / total and, for a
promise that does not hold, the first failing check's message; then the
earlier lessons' tests, by file; then `N passed, M failed`.
"""

from fnmatch import fnmatch

from support.promises import promises

_results = {}  # nodeid -> (outcome, message, key)


def _key(nodeid):
    """"tests/test_x.py::test_y[v0.7-a]" -> "test_x.py::test_y"."""
    path, _, name = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + "::" + name.split("[", 1)[0]


def _message(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash else str(report.longrepr)
    lines = [l for l in text.strip().splitlines() if l.strip()]
    first = lines[0] if lines else "failed"
    return first if len(first) <= 200 else first[:197] + "..."


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        if report.skipped and report.when != "call":
            outcome = "skipped"
        elif report.failed:
            outcome = "failed"
        else:
            outcome = report.outcome
        old = _results.get(report.nodeid)
        if old is None or old[0] == "passed":
            msg = _message(report) if outcome == "failed" else ""
            _results[report.nodeid] = (outcome, msg, _key(report.nodeid))


def _line(title, rows):
    passed = sum(1 for o, _, _ in rows if o == "passed")
    counted = [r for r in rows if r[0] != "skipped"]
    mark = "ok  " if passed == len(counted) else "FAIL"
    out = f"  {mark} {title}: {passed}/{len(counted)}"
    fails = [m for o, m, _ in rows if o == "failed"]
    if fails:
        out += f"\n         first failure: {fails[0]}"
    return out


def pytest_terminal_summary(terminalreporter, config):
    stages = getattr(config, "zn_stages", [])
    if len(stages) != 1 or not _results:
        return
    stage = stages[0]
    write = terminalreporter.write_line
    rows = list(_results.values())
    exercise = config.getoption("--exercise")
    write("")
    if exercise:
        write(f"Scorecard: exercise {' '.join(exercise)}")
        write(_line("its check", rows))
    else:
        write(f"Scorecard: {stage}, the lesson's promises")
        left = rows
        for title, patterns in promises(stage):
            mine = [r for r in left
                    if any(fnmatch(r[2], p) for p in patterns)]
            left = [r for r in left if r not in mine]
            if mine:
                write(_line(title, mine))
        if left:
            write("And what the earlier lessons promised, by test file:")
            files = {}
            for r in left:
                files.setdefault(r[2].split("::")[0], []).append(r)
            for name in sorted(files):
                write(_line(name, files[name]))
    passed = sum(1 for o, _, _ in rows if o == "passed")
    failed = sum(1 for o, _, _ in rows if o == "failed")
    write(f"{passed} passed, {failed} failed")
