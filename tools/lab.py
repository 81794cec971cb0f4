#!/usr/bin/env python3
"""Labs: a learner writes a stage's lesson, and the stage's own tests grade
it (DESIGN.md section 12).

    python3 tools/lab.py new v0.7 [--dir lab/v0.7]      make lab STAGE=v0.7
    python3 tools/lab.py new --exercise v0.8-1          make lab EX=v0.8-1
    python3 tools/lab.py grade v0.7 [--dir D] [--san S] make grade STAGE=v0.7
    python3 tools/lab.py grade --exercise v0.8-1        make grade EX=v0.8-1
    python3 tools/lab.py prove [--labs v0.3 v0.7] [--exercises [NAME ...]]
                                                        make lab-check (CI)

A lab for vX.Y is lab/vX.Y/: the zinc/ and demo/ of the stage before it,
with vX.Y's Makefile and conf/, so it builds and runs as vX.Y (the demo
prints its directory's name as its version) and the learner starts where
the previous chapter ended. For an exercise the lab is a copy of the
finished stage. `new` never overwrites a lab.

`grade` builds the lab (a build error is shown as one, with the names it
lacks said plainly) and runs the stage's black-box suite against it with
pytest's --stage-dir; --scorecard (tests/support/scorecard.py) prints the scorecard, by
the lesson's promises (tests/support/promises.py). With --exercise it runs
that exercise's check (tests/exercises/) instead.

`prove` is CI's proof that grading means something: a fresh lab of each
stage in --labs fails its grade and passes once the real stage's zinc/ and
demo/ are copied in; each exercise's check fails on the unmodified stage
and passes with its reference solution, docs/solutions/NAME.patch, applied
to a copy.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.build import explain_build_error  # noqa: E402
from support.stages import STAGES  # noqa: E402

SOLUTIONS = ROOT / "docs" / "solutions"
EXERCISES = ROOT / "tests" / "exercises"
MAKEFILE_INCLUDE = "include ../common/stage.mk"
# What a lab holds of the stage before it: the learner's part.
LEARNER_DIRS = ("zinc", "demo")


def rel(path):
    """The path as a learner typed it: relative to the repository when it
    is inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def previous(stage):
    """The stage before this one, or None for the first."""
    names = list(STAGES)
    i = names.index(stage)
    return names[i - 1] if i > 0 else None


def chapter(stage):
    """The stage's chapter, docs/vX.Y-*.md."""
    found = sorted((ROOT / "docs").glob(f"{stage}-*.md"))
    return found[0] if found else None


def goal(stage):
    """The first paragraph of the chapter's "## Goal", unwrapped."""
    path = chapter(stage)
    if path is None:
        return ""
    text = path.read_text()
    m = re.search(r"^## Goal\n+(.*?)\n\n", text, re.S | re.M)
    if not m:
        return ""
    para = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", m.group(1))
    return " ".join(para.replace("**", "").split())


def lesson_files(stage):
    """The files of zinc/ and demo/ the lesson adds, changes or removes,
    as (what, path) pairs."""
    before = previous(stage)
    new = ROOT / stage
    old = ROOT / before if before else None
    out = []
    for top in LEARNER_DIRS:
        names = set()
        for d in (new, old):
            if d is not None and (d / top).is_dir():
                names |= {p.relative_to(d).as_posix()
                          for p in (d / top).rglob("*") if p.is_file()}
        for name in sorted(names):
            a = old / name if old else None
            b = new / name
            if a is None or not a.exists():
                out.append(("new", name))
            elif not b.exists():
                out.append(("removed", name))
            elif a.read_bytes() != b.read_bytes():
                out.append(("changed", name))
    return out


def write_makefile(dest, stage):
    """The stage's Makefile, pointed at the course's common/."""
    text = (ROOT / stage / "Makefile").read_text()
    if MAKEFILE_INCLUDE not in text:
        raise SystemExit(f"{stage}/Makefile has no `{MAKEFILE_INCLUDE}`")
    common = ROOT / "common"
    if dest.resolve().is_relative_to(ROOT):
        common = os.path.relpath(common, dest)
    text = text.replace(MAKEFILE_INCLUDE,
                        "# A lab (tools/lab.py): common/ is the course's.\n"
                        f"COMMON := {common}\n"
                        "include $(COMMON)/stage.mk")
    (dest / "Makefile").write_text(text)


def copy_tree(src, dest):
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("build"))


def copy_stage(stage, dest):
    """A copy of the finished stage at dest (named after it), building
    with the course's common/."""
    copy_tree(ROOT / stage, dest)
    write_makefile(dest, stage)


def fill_lab(stage, dest):
    """dest becomes a lab for the stage: the stage before it, building as
    this one. For the first stage, its headers and demo: the learner
    writes zinc/*.c."""
    before = previous(stage)
    dest.mkdir(parents=True)
    if before is None:
        shutil.copytree(ROOT / stage / "demo", dest / "demo")
        (dest / "zinc").mkdir()
        for h in (ROOT / stage / "zinc").glob("*.h"):
            shutil.copy(h, dest / "zinc" / h.name)
    else:
        for top in LEARNER_DIRS:
            copy_tree(ROOT / before / top, dest / top)
    if (ROOT / stage / "conf").is_dir():
        copy_tree(ROOT / stage / "conf", dest / "conf")
    write_makefile(dest, stage)


def lab_dir(stage, given):
    """The lab's directory: given, or lab/vX.Y. Its name must be the
    version, because the demo prints its directory's name as its version
    and the tests check it."""
    dest = Path(given) if given else ROOT / "lab" / stage
    if dest.resolve().name != stage:
        raise SystemExit(f"a lab for {stage} must be a directory named "
                         f"{stage} (the demo prints it as its version): "
                         f"{given}")
    return dest.resolve()


def parse_exercise(name):
    m = re.fullmatch(r"(v\d+\.\d+)-(\d+)", name or "")
    if not m or m.group(1) not in STAGES:
        raise SystemExit(f"{name}: an exercise is named vX.Y-N, e.g. v0.8-1 "
                         "(`make grade` with no EX lists them)")
    if name not in exercises():
        raise SystemExit(f"{name} has no check. Checked exercises: "
                         + " ".join(exercises()))
    return m.group(1)


def exercises():
    """The checked exercises, from the exercise markers in
    tests/exercises/, in course order."""
    names = set()
    for f in EXERCISES.glob("test_*.py"):
        names |= set(re.findall(r'mark\.exercise\("([^"]+)"\)',
                                f.read_text()))

    def key(n):
        v, i = n.split("-")
        return tuple(int(x) for x in v.lstrip("v").split(".")) + (int(i),)
    return sorted(names, key=key)


def cmd_new(args):
    if args.exercise:
        stage = parse_exercise(args.exercise)
    else:
        stage = args.stage
        if stage not in STAGES:
            raise SystemExit(f"make lab STAGE={stage}: no such stage "
                             f"(have: {' '.join(STAGES)})")
    dest = lab_dir(stage, args.dir)
    where = rel(dest)
    grade = f"make grade STAGE={stage}"
    if args.exercise:
        grade = f"make grade EX={args.exercise}"
    if args.dir:
        grade += f" LAB={where}"
    if dest.exists():
        print(f"{where} exists: it is left as it is. Go on with it and "
              f"`{grade}`,\nor start over with `rm -rf {where}` and the "
              "same make lab.")
        return 0
    if args.exercise:
        copy_stage(stage, dest)
        print(f"{where}: a copy of {stage} for exercise {args.exercise} "
              f"(the chapter: {rel(chapter(stage))}, \"Exercises\").")
        print(f"\nDo the exercise there, then:  {grade}")
        return 0
    fill_lab(stage, dest)
    before = previous(stage)
    start = (f"{before}'s zinc/ and demo/" if before else
             f"{stage}'s headers (zinc/*.h) and demo: you write zinc/*.c")
    print(f"{where}: {start}, building as {stage}.\n")
    print(textwrap.fill(f"The lesson ({rel(chapter(stage))}): {goal(stage)}",
                        76))
    print("\nThe files the lesson touches (make diff TO=" + stage + "):")
    for what, name in lesson_files(stage):
        print(f"  {what:8} {name}")
    print(f"\nBuild and test it:  {grade}")
    print(f"Your lab is yours: {rel(ROOT / 'lab')}/ is not ignored by git, "
          "so commit it\nlike your other work (docs/labs.md).")
    return 0


def shout(text=""):
    """Print a line at once (the default `say` of what follows)."""
    print(text, flush=True)


def build(dest, san, say=shout):
    """make in dest; on failure say the compiler's errors and what the
    code lacks, and return False."""
    run = subprocess.run(["make", f"-j{os.cpu_count() or 1}", "-C",
                          str(dest), f"SAN={san}"],
                         capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C"))
    if run.returncode == 0:
        return True
    out = run.stdout + run.stderr
    errors = [l for l in out.splitlines()
              if "error" in l or "undefined reference" in l]
    say(f"BUILD FAILED: {rel(dest)} does not build (`make -C {rel(dest)}`"
        " shows it all):\n")
    for line in errors[:20]:
        say("  " + line)
    if len(errors) > 20:
        say(f"  ... and {len(errors) - 20} more")
    why = explain_build_error(out)
    if why:
        say("\nWhat is missing:")
        for line in why:
            say("  " + line)
    say("\nNo test ran: a build error is not a test failure. Fix the "
        "build and grade again.")
    return False


def pytest_cmd(dest, stage, extra):
    return (["pytest", "tests", "--stage-dir", str(dest),
             "--stage-version", stage, "--scorecard",
             "-p", "no:cacheprovider", "-q", "--tb=no", "-rN", "-o",
             "console_output_style=classic"] + extra)


def cmd_grade(args):
    if args.exercise:
        stage = parse_exercise(args.exercise)
    elif args.stage:
        stage = args.stage
        if stage not in STAGES:
            raise SystemExit(f"make grade STAGE={stage}: no such stage "
                             f"(have: {' '.join(STAGES)})")
    else:
        print("make grade STAGE=vX.Y grades lab/vX.Y (make lab makes it);\n"
              "make grade EX=NAME checks an exercise. Checked exercises:\n  "
              + " ".join(exercises()))
        return 2
    dest = lab_dir(stage, args.dir)
    if not dest.exists():
        what = f"EX={args.exercise}" if args.exercise else f"STAGE={stage}"
        print(f"{rel(dest)} does not exist: make it with `make lab {what}`.")
        return 2
    return grade(stage, dest, args.exercise, args.san)


def grade(stage, dest, exercise=None, san="", say=None):
    """Build the lab at dest and run the stage's suite (or one exercise's
    check) against it; the exit status of pytest, 2 for a build error.
    With say, everything it prints goes there instead, once finished."""
    if not build(dest, san, say or shout):
        return 2
    extra = ["--exercise", exercise] if exercise else []
    run = subprocess.run(pytest_cmd(dest, stage, extra), cwd=ROOT,
                         capture_output=say is not None, text=True)
    if say is not None:
        say(run.stdout + run.stderr)
    return run.returncode


def prove_lab(stage, tmp, say):
    """A fresh lab fails its grade, with a scorecard; with the real stage's
    zinc/ and demo/ in it, it passes."""
    dest = tmp / "labs" / stage
    fill_lab(stage, dest)
    say(f"== {stage}: a fresh lab must fail make grade")
    rc = grade(stage, dest, say=say)
    if rc != 1:
        say(f"PROOF FAILED: a fresh {stage} lab graded with status {rc}, "
            "not 1 (tests failed)")
        return False
    for top in LEARNER_DIRS:
        shutil.rmtree(dest / top)
        copy_tree(ROOT / stage / top, dest / top)
    shutil.rmtree(dest / "build")  # the copies keep their older times
    say(f"== {stage}: the lab with {stage}'s zinc/ and demo/ must pass")
    rc = grade(stage, dest, say=say)
    if rc != 0:
        say(f"PROOF FAILED: {stage}'s own code graded as a lab: status {rc}")
        return False
    return True


def prove_exercise(name, tmp, base, say):
    """The exercise's check fails on the unmodified stage and passes with
    the reference solution applied. base: a built copy of the unmodified
    stage, shared by the stage's exercises; the solution is applied to a
    copy of it, so make rebuilds only what the patch touches."""
    stage = name.split("-")[0]
    patch = SOLUTIONS / f"{name}.patch"
    if not patch.exists():
        say(f"PROOF FAILED: {name} has a check but no {rel(patch)}")
        return False
    say(f"== {name}: the check must fail on {stage} as it is")
    rc = grade(stage, base, name, say=say)
    if rc != 1:
        say(f"PROOF FAILED: {name}'s check on unmodified {stage}: status "
            f"{rc}, not 1 (tests failed)")
        return False
    dest = tmp / name / stage
    shutil.copytree(base, dest, symlinks=True)  # times kept
    run = subprocess.run(["patch", "-p1", "-s", "-d", str(dest), "-i",
                          str(patch)], capture_output=True, text=True)
    if run.returncode != 0:
        say(f"PROOF FAILED: {rel(patch)} does not apply to {stage}:\n"
            + run.stdout + run.stderr)
        return False
    say(f"== {name}: the check must pass with {rel(patch)}")
    rc = grade(stage, dest, name, say=say)
    if rc != 0:
        say(f"PROOF FAILED: {name}'s check with its solution: status {rc}")
        return False
    return True


def proved(task):
    """Run one proof with its own output; (held, what it printed)."""
    lines = []
    held = task(lines.append)
    return held, "\n".join(lines)


def cmd_prove(args):
    names = exercises()
    orphans = sorted(p.stem for p in SOLUTIONS.glob("*.patch")
                     if p.stem not in names)
    if orphans and args.exercises == []:  # every exercise asked for
        print("PROOF FAILED: solutions without a check: " + " ".join(orphans))
        return 1
    wanted = names if args.exercises == [] else (args.exercises or [])
    for n in wanted:
        parse_exercise(n)
    failed = []
    with tempfile.TemporaryDirectory(prefix="zinc-lab-") as tmp, \
            ThreadPoolExecutor(args.jobs) as pool:
        tmp = Path(tmp)
        # A built copy of each unmodified stage, for its exercises.
        bases = {n.split("-")[0]: tmp / "unmodified" / n.split("-")[0]
                 for n in wanted}
        for stage, base in bases.items():
            copy_stage(stage, base)
        built = dict(zip(bases, pool.map(lambda b: build(b, ""),
                                         bases.values())))
        # A lab's whole suite has timed tests: one lab at a time, alone.
        for s in args.labs or []:
            if not prove_lab(s, tmp, shout):
                failed.append(f"lab {s}")
        # An exercise's check is one test: args.jobs at a time, each
        # printing when it is done.
        tasks = [lambda say, n=n: built[n.split("-")[0]] and
                 prove_exercise(n, tmp, bases[n.split("-")[0]], say)
                 for n in wanted]
        for n, (held, text) in zip(wanted, pool.map(proved, tasks)):
            print(text, flush=True)
            if not held:
                failed.append(n)
    total = len(args.labs or []) + len(wanted)
    if failed:
        print(f"\nlab proofs: {len(failed)} of {total} failed: "
              + " ".join(failed))
        return 1
    print(f"\nlab proofs: all {total} held ({len(args.labs or [])} labs, "
          f"{len(wanted)} exercises)")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("new", "grade"):
        s = sub.add_parser(name)
        s.add_argument("stage", nargs="?")
        s.add_argument("--exercise", metavar="NAME")
        s.add_argument("--dir", metavar="DIR",
                       help="the lab's directory (default lab/vX.Y)")
        s.add_argument("--san", default="", help="build with SAN=...")
    s = sub.add_parser("prove")
    s.add_argument("--labs", nargs="*", metavar="STAGE")
    s.add_argument("--exercises", nargs="*", metavar="NAME",
                   help="no names: every checked exercise")
    s.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="proofs at a time (default: the CPUs)")
    args = p.parse_args()
    if args.cmd == "new" and not (args.stage or args.exercise):
        p.error("make lab STAGE=vX.Y, or make lab EX=vX.Y-N")
    return {"new": cmd_new, "grade": cmd_grade, "prove": cmd_prove}[
        args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
