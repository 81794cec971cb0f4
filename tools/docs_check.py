#!/usr/bin/env python3
"""Check that the course's documents still say what the code does.

    python3 tools/docs_check.py [--root DIR] [-v]      (make docs-check)

Reads docs/*.md, README.md and every vX.Y/README.md and prints one line per
problem, `file:line: what is wrong`; exits 1 if there was any, 0 if none.
Standard library only; it reads files (for check 5 it imports
tools/gen_docs.py, which imports bench/run.py), builds and runs nothing,
and takes about a second. `--root DIR` checks another copy of the
repository (the tests plant mistakes in one); `-v` also counts the
excerpts that match.

A document's stage is the vX.Y of its name (docs/v0.7-*.md, v0.7/README.md);
docs/README.md, docs/bench.md, docs/zc.md and README.md have none and may
speak of any stage. Sections whose heading says "Exercises" are skipped by
checks 1 and 2 (except links): they name what a learner is asked to add.

1. Code excerpts. A ```c block is an excerpt of the files its context
   names: the backticked *.c and *.h names (and `zn_log.h/.c`) of the
   paragraph just before it and of every heading it sits under; a block
   right after another block shares that block's context. A name resolves
   in the document's stage: `v0.7/zinc/chan.c` as written, `demo/server.c`
   as vX.Y/demo/server.c, a bare `chan.c` as vX.Y/zinc/chan.c, else
   common/ or client/ (without a stage: client/, common/, bench/,
   tests/api/, then each stage's zinc/). The block must match one of the
   files that resolve. A block whose context names no file must match one
   of the stage's own sources (zinc/, demo/); one whose context names only
   files that are not in the repository (a learner's `hello.c`) is not an
   excerpt, and neither is a block right after the line
   `<!-- docs-check: not an excerpt -->` (a sketch, code that is wrong on
   purpose).
   Matching: comments are removed on both sides (an excerpt may trim
   them) and whitespace is collapsed; blank lines do not count. A line
   that starts with `...` (or `…`) elides code, and so does a blank line
   followed by an unindented line (the next top-level definition); the
   lines of each piece must be contiguous in the file, the pieces in the
   block's order. An excerpt that matches another file of the stage than
   the ones its context names is reported as such.
2. Names, in backticks outside code blocks (and table cells, one by one):
   - `test_name` (`test_name[...]`: the name before the bracket): a
     `def test_name` in tests/; after `test_file.py:` (or `a.py`, `b.py`:)
     in the same sentence or cell, in that file (one of them);
   - `test_file.py`: tests/test_file.py;
   - `zn_name`, `zn_name()`, `zn_name(args)`, `zn_a_new/free()`: a word of
     the code (comments left out) of the stage's zinc/, demo/, common/ or
     client/ sources (without a stage: of any stage's, bench/'s or
     tests/api/'s); a prefix (`zn__`) is not a name. A name an earlier
     stage had is accepted in a sentence that says it went away (gone,
     removed, no longer, instead of, replaced, gives way, loses) or that
     names an earlier stage ("v0.8's `zn_chan_send()`");
   - paths that begin with vX.Y/, zinc/, demo/, conf/ (in the document's
     stage; without one, in some stage), common/, client/, tests/, bench/,
     tools/, docs/, ../common/: the file or directory exists; `chan.*` and
     `datapack.[ch]` are globs, and a path without an extension names a
     module (`zinc/listener`: some zinc/listener.*). In a table row whose
     description starts with "removed", the paths of its first cell must
     *not* exist;
   - make commands, in backticks or as a line of a shell block (`\`
     continues it): each target is one the Makefile run knows (the
     top-level one, or `-C DIR`'s with the files it includes, so a stage's
     includes common/stage.mk; $(STAGES) stands for the stage
     directories), and STAGE=, FROM=, TO= name stages;
   - Markdown links [text](target#anchor), everywhere: the relative file
     exists, and the anchor is a heading's GitHub anchor in it (lowercase,
     punctuation dropped, spaces to hyphens, -1, -2 for repeats) or an
     <a id="..."> there.
   Not checked, so that the documents can speak of what is not in the
   code: table cells under a column headed "Go" or "zinx", spans that
   contain "zinx" (conf/zinx.json, znet/...), placeholders (vX.Y, STAGE=
   vX.Y), what a build makes (any path through a build/ directory), bare
   file names other than test_*.py (the excerpts' names are checked by
   1), and identifiers that do not start with zn_ (Go, zinx, redis,
   libuv, POSIX names, static helpers).
3. "As in" claims. In a stage README's tables, a row whose description
   says "as in vX.Y" claims that the files of its first cell are byte for
   byte vX.Y's (a glob compares every file it matches in either stage);
   "as in vX.Y but for comments" compares C tokens with comments removed.
   Right after one backticked name (`server.h` as in v0.7) the claim is
   about that file only. "as in vX.Y" followed by another qualifier (but,
   without, except, minus, plus) is not checked.
4. Navigation. The lines right under a chapter's title (docs/vX.Y-*.md)
   link the course index (README.md), the previous chapter (all but the
   first) and the next one (all but the last) in stage order, and no other
   chapter; the text of each chapter link is that chapter's title. The
   course index (docs/README.md) and the stage's README link every
   chapter.
5. Length. A chapter's main path is read in one sitting: its lines minus
   those inside <details>...</details> blocks and minus everything from a
   `## Second reading` heading to the end (fenced code does not open or
   close either). It is at most MAIN_PATH_LINES[stage] lines, else
   MAIN_PATH_LINES[None]; the rest moves, it is not cut.
6. Generated blocks. What sits between `<!-- generated by make docs: NAME
   -->` and `<!-- end generated -->` (the benchmark's tables, each
   chapter's "What it costs" table, the stage maps' cost column), and
   docs/bench.svg, is what tools/gen_docs.py (`make docs`) writes from the
   recorded run, docs/bench/run.json, now: a number edited by hand, or a
   run recorded without `make docs`, is reported at the first line that
   differs; so is a block that cannot be written (an unknown NAME, no end
   marker, a server the run lacks).
"""

import argparse
import importlib.util
import re
import shlex
import sys
from pathlib import Path

STAGE_RE = re.compile(r"^v\d+\.\d+$")
CHAPTER_RE = re.compile(r"^(v\d+\.\d+)-.*\.md$")
FENCE_RE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SPAN_RE = re.compile(r"`([^`]+)`")
LINK_RE = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]"
                     r"\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
ANCHOR_TAG_RE = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
SOURCE_NAME_RE = re.compile(r"^(?:[\w.-]+/)*[\w.-]+\.[ch]$")
ZN_RE = re.compile(r"^(zn_\w+(?:/\w+)*)(\(.*\))?$")
TEST_NAME_RE = re.compile(r"^(test_\w+)(\[[^\]]*\])?$")
TEST_FILE_RE = re.compile(r"^test_\w+\.py$")
PATH_PREFIXES = ("zinc/", "demo/", "conf/", "common/", "client/", "tests/",
                 "bench/", "tools/", "docs/", "../common/")
STAGE_PATH_RE = re.compile(r"^(v\d+\.\d+)(/.*)?$")
AS_IN_RE = re.compile(r"as in (v\d+\.\d+)")
SKIP_HEADING_RE = re.compile(r"exercise", re.I)
SKIP_COLUMN_RE = re.compile(r"^\s*(go|zinx)\b", re.I)
SENTENCE_END_RE = re.compile(r"[.!?](?=\s|$)")
GONE_RE = re.compile(r"\b(gone|removed|no longer|instead of|replac\w*|"
                     r"gives? way|loses)\b", re.I)
WORD_RE = re.compile(r"\b\w+\b")
NOT_EXCERPT = "<!-- docs-check: not an excerpt -->"
SHELL_LANGS = {"", "sh", "shell", "console", "bash", "text"}
# the longest main path a chapter may have (check 5); None: any stage
MAIN_PATH_LINES = {None: 400, "v0.9": 500}
DETAILS_OPEN_RE = re.compile(r"<details\b", re.I)
DETAILS_CLOSE_RE = re.compile(r"</details\s*>", re.I)
SECOND_READING_RE = re.compile(r"^##\s+Second reading\b", re.I)


def stage_key(name):
    return tuple(int(x) for x in name[1:].split("."))


class Checker:
    def __init__(self, root):
        self.root = Path(root).resolve()
        self.problems = []
        self.stages = sorted((p.name for p in self.root.iterdir()
                              if p.is_dir() and STAGE_RE.match(p.name)),
                             key=stage_key)
        self._words = {}
        self._texts = {}
        self._anchors = {}
        self._targets = {}
        self._tests = None
        self._code = {}

    # -- reporting -----------------------------------------------------

    def report(self, path, line, msg):
        self.problems.append((self.rel(path), line, msg))

    def rel(self, path):
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def text(self, path):
        path = Path(path)
        if path not in self._texts:
            try:
                self._texts[path] = path.read_text(encoding="utf-8",
                                                   errors="replace")
            except OSError:
                self._texts[path] = None
        return self._texts[path]

    # -- the documents -------------------------------------------------

    def documents(self):
        docs = sorted((self.root / "docs").glob("*.md"))
        docs.append(self.root / "README.md")
        docs += [self.root / s / "README.md" for s in self.stages]
        return [d for d in docs if d.is_file()]

    def chapters(self):
        """[(stage, path)] for docs/vX.Y-*.md, in stage order."""
        found = []
        for p in (self.root / "docs").glob("v*.md"):
            m = CHAPTER_RE.match(p.name)
            if m:
                found.append((m.group(1), p))
        return sorted(found, key=lambda sp: stage_key(sp[0]))

    def stage_of(self, path):
        m = CHAPTER_RE.match(path.name)
        if m and path.parent == self.root / "docs":
            return m.group(1)
        if path.name == "README.md" and STAGE_RE.match(path.parent.name) \
                and path.parent.parent == self.root:
            return path.parent.name
        return None

    def parse(self, path):
        """The document as a list of items:
        ("text", lineno, line, sections) for lines outside code blocks,
        ("code", lineno, lang, [(lineno, line)], sections) for blocks.
        sections: the headings the line sits under, outermost first."""
        items = []
        heads = []  # [(level, text)]
        lines = (self.text(path) or "").split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            m = FENCE_RE.match(line)
            if m:
                fence, lang = m.group(1), m.group(2).lower()
                start = i + 1
                body = []
                i += 1
                while i < len(lines) and not lines[i].strip().startswith(
                        fence[:3]):
                    body.append((i + 1, lines[i]))
                    i += 1
                items.append(("code", start, lang, body, list(heads)))
                i += 1
                continue
            h = HEADING_RE.match(line)
            if h:
                level = len(h.group(1))
                heads = [x for x in heads if x[0] < level]
                heads.append((level, h.group(2), i + 1))
            items.append(("text", i + 1, line, list(heads)))
            i += 1
        return items

    # -- sources -------------------------------------------------------

    def stage_sources(self, stage):
        if stage is None:
            dirs = [self.root / s / d for s in self.stages
                    for d in ("zinc", "demo")]
            dirs += [self.root / d for d in ("client", "common", "bench",
                                             "tests/api")]
        else:
            dirs = [self.root / stage / "zinc", self.root / stage / "demo",
                    self.root / "common", self.root / "client"]
        files = []
        for d in dirs:
            files += sorted(d.glob("*.[ch]"))
        return files

    def words(self, stage):
        """The words of a stage's code (comments left out)."""
        if stage not in self._words:
            found = set()
            for f in self.stage_sources(stage):
                found.update(WORD_RE.findall(
                    strip_comments(self.text(f) or "")))
            self._words[stage] = found
        return self._words[stage]

    def resolve_source(self, name, stage):
        """The file a backticked *.c/*.h name means, or None."""
        if STAGE_PATH_RE.match(name.split("/")[0]) and "/" in name:
            cands = [self.root / name]
        elif stage is None:
            cands = [self.root / name]
            if "/" not in name:
                cands += [self.root / d / name for d in
                          ("client", "common", "bench", "tests/api")]
                cands += [self.root / s / "zinc" / name
                          for s in reversed(self.stages)]
            else:
                cands += [self.root / s / name for s in reversed(self.stages)]
        elif "/" in name:
            cands = [self.root / stage / name, self.root / name]
        else:
            cands = [self.root / stage / "zinc" / name,
                     self.root / "common" / name, self.root / "client" / name]
        for c in cands:
            if c.is_file():
                return c
        return None

    def tests_defined(self):
        """{test name: [files of tests/ that define it]}"""
        if self._tests is None:
            self._tests = {}
            for f in sorted((self.root / "tests").rglob("*.py")):
                for name in re.findall(r"^\s*(?:async\s+)?def (test_\w+)",
                                       self.text(f) or "", re.M):
                    self._tests.setdefault(name, []).append(f)
        return self._tests

    def check_test(self, path, lineno, name, files):
        defined = self.tests_defined().get(name)
        if not defined:
            self.report(path, lineno, f"no test `{name}` in tests/")
            return
        if files and not any(f.name in files for f in defined):
            self.report(path, lineno, f"`{name}` is not in "
                        f"{', '.join(files)} but in "
                        f"{', '.join(self.rel(f) for f in defined)}")

    # -- 1. excerpts ---------------------------------------------------

    @staticmethod
    def norm(line):
        return " ".join(line.split())

    @staticmethod
    def is_elision(norm):
        return norm.startswith("...") or norm.startswith("…")

    def match_excerpt(self, block, path):
        """None if the block matches the file, else (lineno, line) of the
        first block line that does not. Comments are left out on both
        sides (an excerpt may trim them)."""
        if path not in self._code:
            text = strip_comments(self.text(path) or "")
            self._code[path] = [n for n in map(self.norm, text.split("\n"))
                                if n]
        flines = self._code[path]
        marked = [ELIDED if self.is_elision(self.norm(raw)) else raw
                  for _, raw in block]
        code = strip_comments("\n".join(marked)).split("\n")
        pieces, cur = [], []
        blank = False
        for (lineno, _), raw in zip(block, code):
            n = self.norm(raw)
            if not n:
                blank = True
                continue
            if n == ELIDED or (blank and not raw[:1].isspace()):
                # an elision, or a new top-level piece after a blank line
                if cur:
                    pieces.append(cur)
                cur = []
            blank = False
            if n != ELIDED:
                cur.append((lineno, n))
        if cur:
            pieces.append(cur)
        pos = 0
        for piece in pieces:
            want = [n for _, n in piece]
            found = None
            best = 0
            for start in range(pos, len(flines) - len(want) + 1):
                k = 0
                while k < len(want) and flines[start + k] == want[k]:
                    k += 1
                if k == len(want):
                    found = start
                    break
                best = max(best, k)
            if found is None:
                return piece[best] if best < len(piece) else piece[0]
            pos = found + len(want)
        return None

    def source_names(self, text):
        names = []
        for span in SPAN_RE.findall(text):
            span = span.strip()
            if SOURCE_NAME_RE.match(span):
                names.append(span)
            elif re.match(r"^[\w./-]+\.h/\.c$", span):
                names += [span[:-4] + ".h", span[:-4] + ".c"]
        return names

    def check_excerpts(self, path, items, stage):
        prev_ctx = None
        for idx, item in enumerate(items):
            if item[0] != "code":
                continue
            _, start, lang, body, heads = item
            # context: the paragraph before, or the block before
            j = idx - 1
            while j >= 0 and items[j][0] == "text" and not items[j][2].strip():
                j -= 1
            para = []
            after_block = j >= 0 and items[j][0] == "code"
            while j >= 0 and items[j][0] == "text" and items[j][2].strip() \
                    and not HEADING_RE.match(items[j][2]):
                para.append(items[j][2])
                j -= 1
            if lang != "c":
                prev_ctx = None
                continue
            if para and NOT_EXCERPT in para[0] or \
                    any(SKIP_HEADING_RE.search(h[1]) for h in heads):
                prev_ctx = None
                continue
            if after_block and prev_ctx is not None:
                named = prev_ctx
            else:
                named = self.source_names(" ".join(reversed(para)))
                for h in heads:
                    named += self.source_names(h[1])
            prev_ctx = named
            if named:
                files = []
                for n in named:
                    f = self.resolve_source(n, stage)
                    if f is not None and f not in files:
                        files.append(f)
                if not files:
                    continue  # a program of the reader's, not an excerpt
                what = ", ".join(self.rel(f) for f in files)
            else:
                files = self.stage_sources(stage) if stage else []
                files = [f for f in files
                         if stage is None or f.parent.parent.name == stage]
                what = f"any of {stage}'s sources"
                if not files:
                    continue
            worst = None
            for f in files:
                miss = self.match_excerpt(body, f)
                if miss is None:
                    worst = None
                    break
                if worst is None or miss[0] > worst[0]:
                    worst = miss
            if worst is None:
                self.excerpts_ok += 1
                continue
            self.excerpts_bad += 1
            elsewhere = [f for f in self.stage_sources(stage)
                         if f not in files
                         and self.match_excerpt(body, f) is None]
            if named and elsewhere:
                self.report(path, start, f"excerpt is from "
                            f"{self.rel(elsewhere[0])}, but its context "
                            f"names {what}")
            else:
                self.report(path, worst[0], f"excerpt does not match {what}: "
                                            f"{worst[1][:70]}")

    # -- 2. names ------------------------------------------------------

    def exists_path(self, rel, base):
        """rel exists under base: a file, a directory, a glob, or a module
        (a path without an extension)."""
        full = base / rel
        if any(ch in rel for ch in "*?["):
            return any(True for _ in base.glob(rel))
        if full.exists():
            return True
        if "." not in Path(rel).name and not rel.endswith("/"):
            return any(True for _ in full.parent.glob(full.name + ".*"))
        return False

    def check_path(self, path, lineno, span, stage, removed):
        p = span.split()[0] if span.split() else span
        p = p.rstrip(",;:")
        if "X" in p.split("/")[0] or "build" in p.split("/")[:-1] or \
                p.startswith("build"):
            return  # a placeholder, or what a build makes
        m = STAGE_PATH_RE.match(p.split("/")[0])
        if m:
            if "/" not in p:
                return  # a bare stage name: not a path
            if not (self.root / p.split("/")[0]).is_dir():
                self.report(path, lineno, f"no stage {p.split('/')[0]}: `{p}`")
                return
            base, rel = self.root, p
        elif p.startswith(("zinc/", "demo/", "conf/")):
            if stage is None:
                # a document without a stage: some stage must have it
                if not any(self.exists_path(p, self.root / s)
                           for s in self.stages):
                    self.report(path, lineno, f"no stage has {p}")
                return
            base, rel = self.root / stage, p
        elif p.startswith("../common/"):
            base, rel = self.root / "common", p[len("../common/"):]
        elif p.startswith(PATH_PREFIXES):
            base, rel = self.root, p
        else:
            return
        there = self.exists_path(rel, base)
        where = self.rel(base / rel)
        if removed and there:
            self.report(path, lineno, f"said to be removed, but {where} "
                                      f"exists")
        elif not removed and not there:
            self.report(path, lineno, f"no such file: {where}")

    def expand_zn(self, name):
        """zn_a_new/free() -> [zn_a_new, zn_a_free]; two readings of
        zn_conn_set/get_property: with and without the common suffix."""
        parts = name.split("/")
        if len(parts) == 1:
            return [[name]]
        head = parts[0]
        prefix = head[:head.rfind("_") + 1]
        plain = [head] + [prefix + w for w in parts[1:]]
        readings = [plain]
        last = parts[-1]
        if "_" in last:
            suffix = last[last.find("_"):]
            words = [head[len(prefix):]] + parts[1:-1] + \
                [last[:last.find("_")]]
            readings.append([prefix + w + suffix for w in words])
        return readings

    def check_zn(self, path, lineno, span, stage, sentence):
        m = ZN_RE.match(span)
        if not m:
            m = re.match(r"^(zn_\w+)\(", span)
            if not m:
                return
        if m.group(1).endswith("_"):
            return  # a prefix (`zn__`), not a name
        words = self.words(stage)
        readings = self.expand_zn(m.group(1))
        if any(all(n in words for n in r) for r in readings):
            return
        if stage is not None and self.said_gone(sentence, stage):
            earlier = set()
            for s in self.stages:
                if stage_key(s) < stage_key(stage):
                    earlier |= self.words(s)
            if any(all(n in earlier for n in r) for r in readings):
                return  # an earlier stage's, and the sentence says so
        missing = [n for n in readings[0] if n not in words]
        where = stage + "'s sources" if stage else "any source"
        self.report(path, lineno, f"`{span}`: {', '.join(missing)} not in "
                                  f"{where}")

    @staticmethod
    def said_gone(sentence, stage):
        """The sentence says something went away, or speaks of an earlier
        stage."""
        if GONE_RE.search(sentence):
            return True
        return any(stage_key(v) < stage_key(stage)
                   for v in re.findall(r"\bv\d+\.\d+\b", sentence))

    def make_targets(self, directory):
        """The targets a make run in directory knows, or None."""
        directory = Path(directory)
        if directory in self._targets:
            return self._targets[directory]
        mk = directory / "Makefile"
        if not mk.is_file():
            self._targets[directory] = None
            return None
        targets = set()
        todo, seen = [mk], set()
        while todo:
            f = todo.pop()
            if f in seen or not f.is_file():
                continue
            seen.add(f)
            text = (self.text(f) or "").replace("\\\n", " ")
            vars_ = dict(re.findall(r"^(\w+)\s*:?=\s*(.*)$", text, re.M))
            for inc in re.findall(r"^-?include\s+(.+)$", text, re.M):
                inc = re.sub(r"\$\((\w+)\)",
                             lambda v: vars_.get(v.group(1), ""), inc.strip())
                todo.append((directory / inc).resolve())
            for line in text.split("\n"):
                m = re.match(r"^([^\s:=#][^:=#]*?)\s*::?(?!=)", line)
                if not m:
                    continue
                for t in m.group(1).split():
                    if t == "$(STAGES)":
                        targets.update(self.stages)
                    elif "$" not in t and "%" not in t:
                        targets.add(t)
            for ph in re.findall(r"^\.PHONY:(.*)$", text, re.M):
                targets.update(ph.split())
        self._targets[directory] = targets
        return targets

    def check_make(self, path, lineno, command):
        try:
            words = shlex.split(command, comments=True)
        except ValueError:
            words = command.split()
        if not words or words[0] != "make":
            return
        directory = self.root
        targets = []
        i = 1
        while i < len(words):
            w = words[i]
            if w == "-C" and i + 1 < len(words):
                directory = directory / words[i + 1]
                i += 2
                continue
            if w.startswith("-"):
                i += 1
                continue
            if "=" in w:
                var, val = w.split("=", 1)
                if var in ("STAGE", "FROM", "TO") and "X" not in val \
                        and val not in self.stages:
                    self.report(path, lineno, f"`{command.strip()}`: "
                                              f"no stage {val}")
            elif w in ("|", "&&", ";", "||"):
                break
            else:
                targets.append(w)
            i += 1
        if "X" in str(directory.name):
            return
        known = self.make_targets(directory)
        if known is None:
            self.report(path, lineno, f"`{command.strip()}`: no Makefile in "
                                      f"{self.rel(directory)}")
            return
        for t in targets:
            if t not in known:
                self.report(path, lineno, f"`{command.strip()}`: no target "
                                          f"`{t}` in {self.rel(directory)}"
                                          f"/Makefile")

    def anchors(self, path):
        path = Path(path)
        if path not in self._anchors:
            found = set()
            counts = {}
            for item in self.parse(path):
                if item[0] != "text":
                    continue
                found.update(ANCHOR_TAG_RE.findall(item[2]))
                h = HEADING_RE.match(item[2])
                if h and not item[2].startswith(" "):
                    slug = github_slug(h.group(2))
                    n = counts.get(slug, 0)
                    counts[slug] = n + 1
                    found.add(slug if n == 0 else f"{slug}-{n}")
            self._anchors[path] = found
        return self._anchors[path]

    def check_link(self, path, lineno, target):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            return  # http:, mailto:, ...
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            self.report(path, lineno, f"dead link: {target}")
            return
        if anchor and dest.suffix == ".md" and anchor not in \
                self.anchors(dest):
            self.report(path, lineno, f"no anchor #{anchor} in "
                                      f"{self.rel(dest)}")

    def check_names(self, path, items, stage):
        para = []  # consecutive text lines (spans may break across them)
        for item in items + [("code", 0, "", [], [])]:
            if item[0] == "text" and item[2].strip() and \
                    not HEADING_RE.match(item[2]):
                para.append(item)
                continue
            if para:
                self.check_paragraph(path, para, stage)
                para = []
            if item[0] == "text" and item[2].strip():
                self.check_paragraph(path, [item], stage)  # a heading
            if item[0] == "code" and item[2] in SHELL_LANGS:
                if any(SKIP_HEADING_RE.search(h[1]) for h in item[4]):
                    continue
                body = item[3]
                for k, (lineno, line) in enumerate(body):
                    m = re.match(r"^\s*(?:\$\s+)?(make(?:\s.*)?)$", line)
                    if not m:
                        continue
                    command = m.group(1)
                    while command.endswith("\\") and k + 1 < len(body):
                        k += 1
                        command = command[:-1] + " " + body[k][1]
                    self.check_make(path, lineno, command)

    def check_paragraph(self, path, para, stage):
        """The links and backticked names of a paragraph (or a heading, or
        the rows of a table)."""
        heads = para[0][3]
        # links are checked everywhere, even in exercises; their text may
        # break across lines
        whole = "\n".join(x[2] for x in para)
        whole = SPAN_RE.sub(lambda m: "`" + re.sub(r"[^\n]", "x",
                                                   m.group(1)) + "`", whole)
        for m in LINK_RE.finditer(whole):
            lineno = para[0][1] + whole.count("\n", 0, m.start(2))
            self.check_link(path, lineno, m.group(2))
        if any(SKIP_HEADING_RE.search(h[1]) for h in heads):
            return
        header = None
        for _, lineno, line, _ in para:
            if not line.lstrip().startswith("|"):
                header = None
                continue
            cells = split_row(line)
            if header is None:
                header = cells
                continue
            if all(re.match(r"^:?-+:?$", c) for c in cells if c):
                continue
            removed = len(cells) > 1 and \
                re.match(r"^\s*removed\b", cells[1]) is not None
            for col, cell in enumerate(cells):
                name = header[col] if col < len(header) else ""
                if SKIP_COLUMN_RE.match(name):
                    continue
                self.check_unit(path, stage, cell,
                                [(lineno, s) for s in SPAN_RE.findall(cell)],
                                removed and col == 0)
        # spans outside tables; a span may break across lines
        text = "\n".join("" if x[2].lstrip().startswith("|") else x[2]
                         for x in para)
        starts = [0]
        for x in para[:-1]:
            starts.append(starts[-1] + len(x[2] if not x[2].lstrip()
                                          .startswith("|") else "") + 1)
        masked = SPAN_RE.sub(lambda m: "`" + "x" * (len(m.group(0)) - 2)
                             + "`", text)
        ends = [m.end() for m in SENTENCE_END_RE.finditer(masked)]
        ends = sorted(set([0] + ends + [len(text)]))
        for lo, hi in zip(ends, ends[1:]):
            spans = []
            for m in SPAN_RE.finditer(text, lo, hi):
                k = max(i for i, s in enumerate(starts) if s <= m.start())
                spans.append((para[k][1], m.group(1)))
            if spans:
                self.check_unit(path, stage, text[lo:hi], spans, False)

    def check_unit(self, path, stage, sentence, spans, removed):
        """The spans of one sentence or table cell, in order. Test names
        after `test_file.py:` must be in that file (or one of the files of
        a `a.py`, `b.py`: group)."""
        group, last_was_file = [], False
        for lineno, span in spans:
            span = " ".join(span.split())
            if TEST_FILE_RE.match(span):
                group = group + [span] if last_was_file else [span]
                last_was_file = True
            else:
                last_was_file = False
            self.check_span(path, lineno, span, stage, removed, sentence,
                            group)

    def check_span(self, path, lineno, span, stage, removed, sentence,
                   files=()):
        if not span:
            return
        if span == "make" or span.startswith("make "):
            self.check_make(path, lineno, span)
            return
        m = TEST_NAME_RE.match(span)
        if m:
            self.check_test(path, lineno, m.group(1), files)
            return
        if TEST_FILE_RE.match(span):
            if not (self.root / "tests" / span).is_file():
                self.report(path, lineno, f"no such file: tests/{span}")
            return
        if "zinx" in span.lower():
            return  # zinx's own names and files
        if span.startswith("zn_"):
            self.check_zn(path, lineno, span, stage, sentence)
            return
        first = span.split()[0]
        if STAGE_PATH_RE.match(first.split("/")[0]) or \
                first.startswith(PATH_PREFIXES):
            self.check_path(path, lineno, span, stage, removed)

    # -- 3. "as in" claims ---------------------------------------------

    def check_as_in(self, path, items, stage):
        if stage is None or path.name != "README.md":
            return
        for item in items:
            if item[0] != "text":
                continue
            line = item[2]
            if not line.lstrip().startswith("|"):
                continue
            cells = split_row(line)
            if len(cells) < 2:
                continue
            desc = " ".join(cells[1:])
            for m in AS_IN_RE.finditer(desc):
                other = m.group(1)
                rest = desc[m.end():]
                before = desc[:m.start()]
                loose = re.match(r"^\s+but for comments\b", rest) is not None
                if re.match(r"^\s+(but|without|except|minus|plus)\b", rest) \
                        and not loose:
                    continue  # a qualified claim: not checked
                one = re.search(r"`([^`]+)`\s*$", before)
                names = [one.group(1)] if one else \
                    [s.strip() for s in SPAN_RE.findall(cells[0])]
                if not (self.root / other).is_dir():
                    self.report(path, item[1], f"no stage {other}")
                    continue
                for name in names:
                    self.compare_stage_files(path, item[1], stage, other,
                                             name, loose)

    def compare_stage_files(self, path, lineno, stage, other, name, loose):
        here, there = self.root / stage, self.root / other
        pattern = name if "/" in name else None
        if pattern is None:
            # a bare name in a description: the zinc/ file, else anywhere
            for d in ("zinc/", "demo/", "conf/", ""):
                if list(here.glob(d + name)):
                    pattern = d + name
                    break
            else:
                pattern = name
        mine = {p.relative_to(here).as_posix() for p in here.glob(pattern)
                if p.is_file()}
        theirs = {p.relative_to(there).as_posix() for p in there.glob(pattern)
                  if p.is_file()}
        if not mine:
            self.report(path, lineno, f"`{name}`: no such file in {stage}")
            return
        for rel in sorted(mine | theirs):
            if rel not in theirs:
                self.report(path, lineno, f"{stage}/{rel} is not as in "
                                          f"{other}: {other} has no {rel}")
                continue
            if rel not in mine:
                self.report(path, lineno, f"{stage} has no {rel}, but "
                                          f"{other} has")
                continue
            a = self.text(here / rel) or ""
            b = self.text(there / rel) or ""
            if loose:
                same = c_tokens(a) == c_tokens(b)
                how = "differs from {} in more than comments"
            else:
                same = a == b
                how = "differs from {}"
            if not same:
                extra = "" if loose or c_tokens(a) != c_tokens(b) else \
                    " (only in comments: say \"but for comments\")"
                self.report(path, lineno, f"{stage}/{rel} " +
                            how.format(f"{other}/{rel}") + extra)

    # -- 4. navigation -------------------------------------------------

    def check_nav(self):
        chapters = self.chapters()
        titles = {}
        for _, p in chapters:
            for line in (self.text(p) or "").split("\n"):
                if line.startswith("# "):
                    titles[p.name] = line[2:].strip()
                    break
        for k, (stage, p) in enumerate(chapters):
            lines = (self.text(p) or "").split("\n")
            t = next((i for i, x in enumerate(lines) if x.startswith("# ")),
                     None)
            if t is None:
                self.report(p, 1, "no title line (# vX.Y — ...)")
                continue
            nav = []
            i = t + 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            while i < len(lines) and lines[i].strip() and \
                    not lines[i].startswith("#"):
                nav.append((i + 1, lines[i]))
                i += 1
            navline = nav[0][0] if nav else t + 2
            joined = "\n".join(x for _, x in nav)
            links = [(navline + joined.count("\n", 0, m.start(2)),
                      " ".join(m.group(1).split()), m.group(2))
                     for m in LINK_RE.finditer(joined)]
            targets = [x[2] for x in links]
            if "README.md" not in targets:
                self.report(p, navline, "the header does not link the course "
                                        "index (README.md)")
            want = []
            if k > 0:
                want.append(("previous", chapters[k - 1][1].name))
            if k + 1 < len(chapters):
                want.append(("next", chapters[k + 1][1].name))
            for role, name in want:
                found = [x for x in links if x[2] == name]
                if not found:
                    self.report(p, navline, f"the header does not link the "
                                            f"{role} chapter ({name})")
                    continue
                n, text, _ = found[0]
                if name in titles and text.strip() != titles[name]:
                    self.report(p, n, f"link text `{text}` is not the title "
                                      f"of {name}: `{titles[name]}`")
            for n, text, target in links:
                if target.endswith(".md") and target != "README.md" and \
                        target not in dict(want).values():
                    self.report(p, n, f"the header links {target}, which is "
                                      f"not the previous or next chapter")
        # the course index and each stage's README lead to the chapter
        index = self.root / "docs" / "README.md"
        for stage, p in chapters:
            readme = self.root / stage / "README.md"
            for where, target in ((index, p.name),
                                  (readme, "../docs/" + p.name)):
                if where.is_file() and not any(
                        m.group(2).split("#")[0] == target
                        for m in LINK_RE.finditer(self.text(where) or "")):
                    self.report(where, 1, f"no link to the chapter "
                                          f"{self.rel(p)}")

    # -- 5. length -----------------------------------------------------

    def main_path_lines(self, path):
        """How many lines of a chapter are read in the first sitting: not
        those inside <details> blocks, nothing from `## Second reading` on."""
        count, depth, fence = 0, 0, None
        for line in (self.text(path) or "").splitlines():
            m = FENCE_RE.match(line)
            if fence is not None:
                if line.strip().startswith(fence[:3]):
                    fence = None
                count += depth == 0
                continue
            if m:
                fence = m.group(1)
                count += depth == 0
                continue
            if depth == 0 and SECOND_READING_RE.match(line):
                break
            opens = len(DETAILS_OPEN_RE.findall(line))
            inside = depth > 0 or opens > 0
            depth = max(0, depth + opens - len(DETAILS_CLOSE_RE.findall(line)))
            count += not inside
        return count

    def check_length(self):
        for stage, p in self.chapters():
            most = MAIN_PATH_LINES.get(stage, MAIN_PATH_LINES[None])
            n = self.main_path_lines(p)
            if n > most:
                self.report(p, 1, f"main path {n} lines, at most {most} "
                                  f"(move the rest under \"## Second "
                                  f"reading\" or into <details>)")

    # -- 6. generated blocks -------------------------------------------

    def check_generated(self):
        """The blocks make docs writes, against what it would write now
        (tools/gen_docs.py, this file's neighbour, renders them in
        memory)."""
        for path, line, msg in gen_docs().check(self.root):
            self.report(path, line, msg)

    # -- all -----------------------------------------------------------

    def run(self):
        self.excerpts_ok = self.excerpts_bad = 0
        for path in self.documents():
            stage = self.stage_of(path)
            items = self.parse(path)
            self.check_excerpts(path, items, stage)
            self.check_names(path, items, stage)
            self.check_as_in(path, items, stage)
        self.check_nav()
        self.check_length()
        self.check_generated()
        self.problems.sort(key=lambda p: (p[0], p[1]))
        return self.problems


def gen_docs():
    """tools/gen_docs.py, as a module."""
    spec = importlib.util.spec_from_file_location(
        "gen_docs", Path(__file__).resolve().parent / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_row(line):
    """The cells of a Markdown table row (a `|` inside backticks is not a
    separator)."""
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells, cur, code = [], "", False
    for ch in line:
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


def github_slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links
    text = re.sub(r"<[^>]+>", "", text)  # tags
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*)", "", text)
    text = text.strip().lower()
    text = "".join(ch for ch in text
                   if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


ELIDED = "\x00..."
COMMENT_TOKEN_RE = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
                              r'|/\*.*?(?:\*/|$(?![\s\S]))|//[^\n]*', re.S)


def strip_comments(text):
    """C text with every comment blanked out, its newlines kept."""
    def blank(m):
        s = m.group(0)
        if s.startswith(("/*", "//")):
            return re.sub(r"[^\n]", " ", s)
        return s
    return COMMENT_TOKEN_RE.sub(blank, text)


def c_tokens(text):
    """C text as a list of tokens, comments removed (strings kept)."""
    out = []
    i, n = 0, len(text)
    tok = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/'
                     r'|//[^\n]*|\s+|\w+|.', re.S)
    while i < n:
        m = tok.match(text, i)
        s = m.group(0)
        i = m.end()
        if s.startswith("/*") or s.startswith("//") or s.isspace():
            continue
        out.append(s)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Check the documents against the code (the rules: "
                    "python3 -m pydoc tools/docs_check.py).")
    ap.add_argument("--root", default=Path(__file__).resolve().parent.parent,
                    help="the repository (default: this file's)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also say how many excerpts matched")
    args = ap.parse_args(argv)
    checker = Checker(args.root)
    problems = checker.run()
    for f, line, msg in problems:
        print(f"{f}:{line}: {msg}")
    sys.stdout.flush()
    if args.verbose:
        print(f"excerpts: {checker.excerpts_ok} match, "
              f"{checker.excerpts_bad} do not", file=sys.stderr)
    if problems:
        print(f"docs-check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
