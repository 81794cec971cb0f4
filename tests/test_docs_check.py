"""tools/docs_check.py (`make docs-check`): the documents against the code.

The first test runs the check on this repository: every excerpt, name,
link, "as in" claim and chapter header holds. The others build a small
course of two stages in a temporary directory, check that it passes as
written, then plant one mistake of each kind and expect the check to
name its file and line. No server, no build: a second or so in all.
"""

import subprocess
import sys
import textwrap

import pytest

from support.build import ROOT

TOOL = ROOT / "tools" / "docs_check.py"


def run_check(root):
    """(exit status, the problem lines) of the check on root."""
    run = subprocess.run([sys.executable, str(TOOL), "--root", str(root)],
                         capture_output=True, text=True, timeout=60)
    return run.returncode, run.stdout.splitlines()


def test_the_documents_match_the_code():
    status, problems = run_check(ROOT)
    assert problems == [] and status == 0, "\n".join(problems)


# A course in miniature: two stages, their READMEs, two chapters, an index,
# a test file and the Makefiles.
COURSE = {
    "Makefile": """\
        all:
        test: docs-check all
        docs-check:
        .PHONY: all test docs-check
        """,
    "common/stage.mk": """\
        all: build/server
        clean:
        .PHONY: all clean
        """,
    "common/zn_log.h": """\
        /* Log a line at INFO. */
        void zn_info(const char *fmt, ...);
        """,
    "v0.1/Makefile": "include ../common/stage.mk\n",
    "v0.1/zinc/server.h": """\
        /* A server. */
        struct zn_server *zn_server_new(const char *name);
        """,
    "v0.1/zinc/server.c": """\
        #include "zinc/server.h"

        struct zn_server {
            char *name; /* shown in log lines */
            int port;
        };

        /* The constructor. */
        struct zn_server *zn_server_new(const char *name)
        {
            struct zn_server *s = calloc(1, sizeof(*s));

            if (s == NULL)
                return NULL;
            s->name = strdup(name);
            s->port = 8999;
            return s;
        }

        void zn__server_reset(struct zn_server *s)
        {
            s->port = 0;
        }
        """,
    "v0.2/Makefile": "include ../common/stage.mk\n",
    "v0.2/zinc/server.h": """\
        /* A server. */
        struct zn_server *zn_server_new(const char *name);
        """,
    "v0.2/zinc/server.c": """\
        #include "zinc/server.h"

        struct zn_server *zn_server_new(const char *name)
        {
            return calloc(1, sizeof(struct zn_server));
        }

        void zn_server_free(struct zn_server *s)
        {
            free(s);
        }
        """,
    "v0.1/README.md": """\
        # zinc v0.1

        | file | what it is |
        |---|---|
        | `zinc/server.h`, `zinc/server.c` | the server |

        Chapter: [docs/v0.1-first.md](../docs/v0.1-first.md).
        """,
    "v0.2/README.md": """\
        # zinc v0.2

        | file | what it is |
        |---|---|
        | `zinc/server.c` | the server, with `zn_server_free()` |
        | `zinc/server.h` | as in v0.1 |
        | `zinc/timer.c` | removed: nothing waits |

        Chapter: [docs/v0.2-second.md](../docs/v0.2-second.md).
        """,
    "docs/README.md": """\
        # The course

        | stage | chapter |
        |---|---|
        | v0.1 | [v0.1-first.md](v0.1-first.md) |
        | v0.2 | [v0.2-second.md](v0.2-second.md) |

        ## Testing

        `make test` runs `make docs-check` first, then
        `test_echo.py`: `test_echo_comes_back`.
        """,
    "docs/v0.1-first.md": """\
        # v0.1 — First

        [Course index](README.md) · next: [v0.2 — Second](v0.2-second.md)

        ## Walking through `v0.1/zinc/server.c`

        ### The struct and `zn_server_new()`

        ```c
        struct zn_server {
            char *name;
            ...
        };

        struct zn_server *zn_server_new(const char *name)
        {
            ...
            s->name = strdup(name);
            s->port = 8999;
            return s;
        }
        ```

        The name is logged with `zn_info()`; see [the
        exercises](v0.2-second.md#exercises) and
        [Walking through](#walking-through-v01zincserverc).

        | Go (zinx) | C (zinc) |
        |---|---|
        | `zn_go_thing()` | `zn_server_new()` |

        Run `make -C v0.1`, then `make test STAGE=v0.1`
        (`test_echo.py`: `test_echo_comes_back`).
        """,
    "docs/v0.2-second.md": """\
        # v0.2 — Second

        [Course index](README.md) · previous: [v0.1 — First](v0.1-first.md)

        `zn_server_free()` is new; `zn__server_reset()` is gone
        since v0.1, and `v0.1/zinc/server.c` had no free.

        ## Exercises

        Add `zn_server_restart()` and a test `test_restart_works` in
        `tests/test_restart.py`.
        """,
    "tests/test_echo.py": """\
        def test_echo_comes_back(server):
            pass
        """,
}


@pytest.fixture
def course(tmp_path):
    for name, text in COURSE.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_small_course_passes_as_written(course):
    """Exercises, the Go column, elisions, a name said to be gone, a
    removed file: none of them is a problem."""
    assert run_check(course) == (0, [])


def only_problem(course):
    status, problems = run_check(course)
    assert status == 1
    assert len(problems) == 1, problems
    return problems[0]


def test_a_changed_excerpt_line_is_reported(course):
    edit(course / "v0.1/zinc/server.c", "s->port = 8999;", "s->port = 0;")
    assert only_problem(course) == (
        "docs/v0.1-first.md:19: excerpt does not match "
        "v0.1/zinc/server.c: s->port = 8999;")


def test_an_excerpt_from_another_file_is_reported(course):
    edit(course / "docs/v0.1-first.md",
         "## Walking through `v0.1/zinc/server.c`",
         "## Walking through `v0.1/zinc/server.h`")
    edit(course / "docs/v0.1-first.md", "#walking-through-v01zincserverc",
         "#walking-through-v01zincserverh")
    problem = only_problem(course)
    assert problem.startswith("docs/v0.1-first.md:9: excerpt is from "
                              "v0.1/zinc/server.c, but its context names "
                              "v0.1/zinc/server.h")


def test_a_missing_test_name_is_reported(course):
    edit(course / "tests/test_echo.py", "def test_echo_comes_back",
         "def test_echo_returns")
    status, problems = run_check(course)
    assert status == 1
    assert problems == [
        "docs/README.md:11: no test `test_echo_comes_back` in tests/",
        "docs/v0.1-first.md:33: no test `test_echo_comes_back` in tests/"]


def test_a_test_in_another_file_is_reported(course):
    (course / "tests/test_echo.py").rename(course / "tests/test_other.py")
    status, problems = run_check(course)
    assert "docs/v0.1-first.md:33: no such file: tests/test_echo.py" \
        in problems
    assert "docs/v0.1-first.md:33: `test_echo_comes_back` is not in " \
        "test_echo.py but in tests/test_other.py" in problems


def test_a_missing_function_is_reported(course):
    edit(course / "docs/v0.1-first.md", "logged with `zn_info()`",
         "logged with `zn_log_info()`")
    assert only_problem(course) == (
        "docs/v0.1-first.md:24: `zn_log_info()`: zn_log_info not in "
        "v0.1's sources")


def test_a_later_stages_function_is_reported(course):
    edit(course / "docs/v0.1-first.md", "logged with `zn_info()`",
         "logged with `zn_info()`, freed with `zn_server_free()`")
    assert only_problem(course) == (
        "docs/v0.1-first.md:24: `zn_server_free()`: zn_server_free not in "
        "v0.1's sources")


def test_a_missing_file_is_reported(course):
    edit(course / "docs/v0.2-second.md", "`v0.1/zinc/server.c` had",
         "`v0.1/zinc/serve.c` had")
    assert only_problem(course) == (
        "docs/v0.2-second.md:6: no such file: v0.1/zinc/serve.c")


def test_a_removed_file_that_exists_is_reported(course):
    (course / "v0.2/zinc/timer.c").write_text("\n")
    assert only_problem(course) == (
        "v0.2/README.md:7: said to be removed, but v0.2/zinc/timer.c exists")


def test_a_missing_make_target_is_reported(course):
    edit(course / "docs/v0.1-first.md", "Run `make -C v0.1`",
         "Run `make -C v0.1 check`")
    assert only_problem(course) == (
        "docs/v0.1-first.md:32: `make -C v0.1 check`: no target `check` in "
        "v0.1/Makefile")


def test_a_make_command_for_a_missing_stage_is_reported(course):
    edit(course / "docs/v0.1-first.md", "STAGE=v0.1", "STAGE=v0.3")
    assert only_problem(course) == (
        "docs/v0.1-first.md:32: `make test STAGE=v0.3`: no stage v0.3")


def test_a_dead_link_is_reported(course):
    (course / "docs/v0.1-first.md").rename(course / "docs/v0.1-basic.md")
    status, problems = run_check(course)
    assert "docs/README.md:5: dead link: v0.1-first.md" in problems
    assert "v0.1/README.md:7: dead link: ../docs/v0.1-first.md" in problems
    assert "docs/v0.2-second.md:3: the header does not link the previous " \
        "chapter (v0.1-basic.md)" in problems


def test_a_dead_anchor_is_reported(course):
    edit(course / "docs/v0.2-second.md", "## Exercises", "## Exercise ideas")
    assert only_problem(course) == (
        "docs/v0.1-first.md:25: no anchor #exercises in docs/v0.2-second.md")


def test_a_dead_anchor_in_the_same_file_is_reported(course):
    edit(course / "docs/v0.1-first.md", "## Walking through `v0.1/zinc/",
         "## Reading `v0.1/zinc/")
    assert only_problem(course) == (
        "docs/v0.1-first.md:26: no anchor #walking-through-v01zincserverc "
        "in docs/v0.1-first.md")


def test_a_false_as_in_claim_is_reported(course):
    edit(course / "v0.2/zinc/server.h", "const char *name",
         "const char *name, int port")
    assert only_problem(course) == (
        "v0.2/README.md:6: v0.2/zinc/server.h differs from "
        "v0.1/zinc/server.h")


def test_as_in_but_for_comments(course):
    edit(course / "v0.2/zinc/server.h", "/* A server. */", "/* Any server. */")
    assert only_problem(course) == (
        "v0.2/README.md:6: v0.2/zinc/server.h differs from "
        "v0.1/zinc/server.h (only in comments: say \"but for comments\")")
    edit(course / "v0.2/README.md", "| as in v0.1 |",
         "| as in v0.1 but for comments |")
    assert run_check(course) == (0, [])


def test_a_missing_next_link_is_reported(course):
    edit(course / "docs/v0.1-first.md",
         " · next: [v0.2 — Second](v0.2-second.md)", "")
    assert only_problem(course) == (
        "docs/v0.1-first.md:3: the header does not link the next chapter "
        "(v0.2-second.md)")


def test_a_stale_chapter_title_in_a_link_is_reported(course):
    edit(course / "docs/v0.2-second.md", "# v0.2 — Second", "# v0.2 — Two")
    assert only_problem(course) == (
        "docs/v0.1-first.md:3: link text `v0.2 — Second` is not the title "
        "of v0.2-second.md: `v0.2 — Two`")


def test_a_new_stage_needs_its_place_in_the_chain(course):
    """A third chapter: v0.2 must now link it as the next one, and the
    course index must list it."""
    (course / "docs/v0.3-third.md").write_text(
        "# v0.3 — Third\n\n[Course index](README.md) · previous: "
        "[v0.2 — Second](v0.2-second.md)\n")
    assert run_check(course) == (1, [
        "docs/README.md:1: no link to the chapter docs/v0.3-third.md",
        "docs/v0.2-second.md:3: the header does not link the next chapter "
        "(v0.3-third.md)"])


def test_a_sketch_can_say_it_is_not_an_excerpt(course):
    chapter = course / "docs/v0.1-first.md"
    edit(chapter, "s->port = 8999;", "s->port = 1;")
    assert run_check(course)[0] == 1
    edit(chapter, "### The struct and `zn_server_new()`\n",
         "### The struct and `zn_server_new()`\n\n"
         "<!-- docs-check: not an excerpt -->\n")
    assert run_check(course) == (0, [])


def test_a_chapter_too_long_to_read_in_one_sitting_is_reported(course):
    """400 lines more of walk-through: reported on line 1. The same lines
    in a collapsed <details> block, or under "## Second reading" at the
    end, are not on the main path."""
    chapter = course / "docs/v0.2-second.md"
    walk = "".join(f"Step {i} of the walk.\n" for i in range(400))
    edit(chapter, "## Exercises", walk + "\n## Exercises")
    assert only_problem(course) == (
        "docs/v0.2-second.md:1: main path 412 lines, at most 400 (move the "
        "rest under \"## Second reading\" or into <details>)")
    edit(chapter, walk, "<details><summary>Every step</summary>\n\n" + walk +
         "\n</details>\n")
    assert run_check(course) == (0, [])
    edit(chapter, "<details><summary>Every step</summary>\n\n" + walk +
         "\n</details>\n", "")
    chapter.write_text(chapter.read_text() + "\n## Second reading\n\n" +
                       walk)
    assert run_check(course) == (0, [])


# ---- 6. generated blocks: make docs (tools/gen_docs.py) and the check

GEN = ROOT / "tools" / "gen_docs.py"


def bench_cell(server, conns, rtt, cpu):
    return {"server": server, "conns": conns, "rtt": rtt, "p50": 900.0,
            "p99": 1800.0, "max": 2500.0, "cpu_us": cpu, "rss_mib": 3.0,
            "threads": 3, "errors": 0, "vs": "ref"}


# A recorded run of the small course: its v0.2 and the reference server.
RUN = {
    "meta": {"command": "make bench QUICK=1", "date": "2026-12-07",
             "machine": "2 vCPU, Debian", "code": "",
             "note": "The load generator shares the two CPUs"},
    "cells": [bench_cell("v0.2", 100, 40000.0, 20.0),
              bench_cell("v0.2", 1000, 30000.0, 30.0),
              bench_cell("ref", 100, 80000.0, 10.0),
              bench_cell("ref", 1000, 90000.0, 9.0)],
    "many": [], "idle_kib": {"v0.2": 12.4, "ref": 4.1}, "skipped": [],
    "seconds": 1.0, "warmup": 0.3,
}

BENCH_PAGE = """\
# Benchmarks

## The recorded run

<!-- generated by make docs: run -->
<!-- end generated -->

<!-- generated by make docs: bench tables -->
<!-- end generated -->

<!-- generated by make docs: bench chart -->
<!-- end generated -->
"""


def make_docs(root, *args):
    """(exit status, stdout) of tools/gen_docs.py on root."""
    run = subprocess.run([sys.executable, str(GEN), "--root", str(root)]
                         + list(args), capture_output=True, text=True,
                         timeout=60)
    return run.returncode, run.stdout


def texts(root):
    return {p: p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def benched(course):
    """The small course with a recorded run, a benchmark page and its
    stage map between markers, after `make docs`."""
    import json
    (course / "docs/bench").mkdir()
    (course / "docs/bench/run.json").write_text(json.dumps(RUN, indent=1))
    (course / "docs/bench.md").write_text(BENCH_PAGE)
    edit(course / "Makefile", "docs-check:\n", "docs-check:\nbench:\n")
    edit(course / "docs/README.md", "| stage | chapter |",
         "<!-- generated by make docs: stage map -->\n\n| stage | chapter |")
    edit(course / "docs/README.md", "(v0.2-second.md) |\n",
         "(v0.2-second.md) |\n\n<!-- end generated -->\n")
    assert make_docs(course)[0] == 0
    return course


def line_of(path, text):
    """The line number of the first line of path that holds text."""
    return next(n for n, line in enumerate(path.read_text().split("\n"), 1)
                if text in line)


def test_make_docs_writes_every_block_and_a_second_run_changes_nothing(
        benched):
    index = (benched / "docs/README.md").read_text()
    assert "| stage | [round trips/s](bench.md#the-recorded-run), 1,000 " \
        "conns (ref 90,000) | chapter |" in index
    assert "| v0.1 | — | [v0.1-first.md]" in index
    assert "| v0.2 | 30,000 | [v0.2-second.md]" in index
    page = (benched / "docs/bench.md").read_text()
    assert "| v0.2 | 1000 | 30,000 | 0.33 |" in page
    assert "![round trips per second and p99 latency of v0.2 and ref at " \
        "100 and 1,000 connections" in page
    assert (benched / "docs/bench.svg").read_text().startswith("<svg")
    assert run_check(benched) == (0, [])
    before = texts(benched)
    assert make_docs(benched) == (0, "")
    assert make_docs(benched, "--check") == (0, "")
    assert texts(benched) == before


def test_a_number_edited_in_a_generated_block_is_reported(benched):
    index = benched / "docs/README.md"
    edit(index, "| v0.2 | 30,000 |", "| v0.2 | 31,000 |")
    assert only_problem(benched) == (
        f"docs/README.md:{line_of(index, '| v0.2 | 31,000 |')}: block "
        f"'stage map' is not what `make docs` writes from "
        f"docs/bench/run.json: run make docs")
    assert make_docs(benched, "--check")[0] == 1
    assert make_docs(benched)[0] == 0
    assert run_check(benched) == (0, [])


def test_a_changed_chart_or_table_row_is_reported(benched):
    page = benched / "docs/bench.md"
    edit(page, "| ref | 100 | 80,000 | 1.00 |", "| ref | 100 | 80,000 | 1.0 |")
    edit(benched / "docs/bench.svg", "</svg>", "<rect/></svg>")
    status, problems = run_check(benched)
    assert status == 1
    assert problems == [
        f"docs/bench.md:{line_of(page, '| ref | 100 | 80,000 | 1.0 |')}: "
        f"block 'bench tables' is not what `make docs` writes from "
        f"docs/bench/run.json: run make docs",
        f"docs/bench.svg:{line_of(benched / 'docs/bench.svg', '<rect/>')}: "
        f"not what `make docs` writes from docs/bench/run.json: run make "
        f"docs"]


def test_a_run_recorded_without_make_docs_is_reported(benched):
    """A new run.json and no make docs: every block that quotes the number
    that changed."""
    edit(benched / "docs/bench/run.json", "30000.0", "33000.0")
    status, problems = run_check(benched)
    assert status == 1
    assert [p.split(":")[0] for p in problems] == [
        "docs/README.md", "docs/bench.md", "docs/bench.svg"]


def test_a_block_make_docs_cannot_write_is_reported(benched):
    chapter = benched / "docs/v0.2-second.md"
    edit(chapter, "## Exercises",
         "## What it costs\n\n<!-- generated by make docs: costs v0.2 -->\n"
         "<!-- end generated -->\n\n## Exercises")
    line = line_of(chapter, "costs v0.2")
    assert only_problem(benched) == (
        f"docs/v0.2-second.md:{line}: block 'costs v0.2': no table for v0.2 "
        f"in CHAPTERS (tools/gen_docs.py)")
    edit(chapter, "<!-- end generated -->\n", "")
    assert only_problem(benched) == (
        f"docs/v0.2-second.md:{line}: block 'costs v0.2' has no "
        f"`<!-- end generated -->`")
