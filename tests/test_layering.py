"""Layering (DESIGN §8): a module calls down, never up.

Reads a stage's zinc/*.c and *.h (comments stripped) and draws a graph:
module X depends on module Y when X's files include "zinc/Y.h" or call a
function that Y's header declares. Every edge must point down the order
below; so no module includes or calls one above it, and no two modules
call each other. The connection is a leaf: it reports upward only through
the callbacks it is given when it is made, so neither it nor its parts
(the writer, the properties) depend on the server, the connection
manager, the message handler or the request.
"""

import re
import shutil

from support.build import ROOT, stage_dir

# Top to bottom. A module may depend only on modules after it.
ORDER = ["server", "listener", "connmgr", "msghandler", "connection",
         "writer", "properties", "router", "request", "chan", "loop",
         "poller", "datapack", "message", "config"]
CONNECTION_PARTS = {"connection", "writer", "properties"}
ABOVE_CONNECTION = {"server", "connmgr", "msghandler", "request"}

COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
STRING_RE = re.compile(r'"(?:\\.|[^"\\\n])*"')
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"zinc/(\w+)\.h"', re.M)
FUNC_RE = re.compile(r"\b(zn_\w+)\s*\(")


def strip(text):
    """The C text without comments."""
    return COMMENT_RE.sub(" ", text)


def code(text):
    """Stripped text with strings emptied: a log line that names a
    function is not a call."""
    return STRING_RE.sub('""', text)


def module(stem):
    """connection_internal.h belongs to the connection module."""
    return stem.removesuffix("_internal")


def dependencies(zinc_dir):
    """{module: {module it depends on: [why, ...]}} for one zinc/ dir."""
    files = {p: strip(p.read_text()) for p in sorted(zinc_dir.glob("*.[ch]"))}
    owner = {}  # function name -> module whose header declares it
    for path, text in files.items():
        if path.suffix == ".h":
            for name in FUNC_RE.findall(code(text)):
                owner.setdefault(name, module(path.stem))
    deps = {}
    for path, text in files.items():
        mod = module(path.stem)
        edges = deps.setdefault(mod, {})
        for inc in INCLUDE_RE.findall(text):
            if module(inc) != mod:
                edges.setdefault(module(inc), []).append(
                    f'{path.name} includes "zinc/{inc}.h"')
        if path.suffix == ".c":
            for name in sorted(set(FUNC_RE.findall(code(text)))):
                other = owner.get(name)
                if other is not None and other != mod:
                    edges.setdefault(other, []).append(
                        f"{path.name} calls {name}()")
    return deps


def violations(zinc_dir):
    """Every edge that breaks the layering, as readable lines."""
    deps = dependencies(zinc_dir)
    bad = []
    for mod in sorted(deps):
        if mod not in ORDER:
            bad.append(f"{mod}: a module test_layering.py does not know: "
                       f"give it its place in ORDER")
            continue
        for other, why in sorted(deps[mod].items()):
            if other not in ORDER:
                continue  # reported as its own module
            if ORDER.index(other) < ORDER.index(mod):
                kind = ("calls back up into" if mod in deps.get(other, {})
                        else "depends on")
                bad.append(f"{mod} {kind} {other}, which is above it: "
                           f"{'; '.join(why)}")
    return bad


def test_modules_depend_only_on_modules_below(stage):
    """No module of the stage includes or calls one above it, and no two
    modules call each other."""
    assert violations(stage_dir(stage) / "zinc") == []


def test_connection_is_a_leaf(stage):
    """The connection (and from v0.7 its writer, from v1.0 its properties)
    includes and calls nothing of the server, the connection manager, the
    message handler or the request: it reports through callbacks."""
    deps = dependencies(stage_dir(stage) / "zinc")
    found = {f"{mod} -> {other}: {'; '.join(why)}"
             for mod in CONNECTION_PARTS & deps.keys()
             for other, why in deps[mod].items() if other in ABOVE_CONNECTION}
    assert sorted(found) == []


def test_the_check_catches_an_upward_include_and_call(tmp_path):
    """The checker itself, on a copy of the newest stage: clean as it is,
    and a planted include of server.h plus a call up into the message
    handler from connection.c are both reported."""
    newest = sorted((p for p in ROOT.glob("v*.*") if p.is_dir()),
                    key=lambda p: [int(x) for x in p.name[1:].split(".")])[-1]
    zinc = tmp_path / "zinc"
    shutil.copytree(newest / "zinc", zinc)
    assert violations(zinc) == []
    conn = zinc / "connection.c"
    conn.write_text('#include "zinc/server.h"\n' + conn.read_text() +
                    "\nvoid planted(void) { zn_msghandler_free(0); }\n")
    bad = violations(zinc)
    assert any(b.startswith("connection ") and " server, " in b
               and 'includes "zinc/server.h"' in b for b in bad), bad
    assert any(b.startswith("connection ") and " msghandler, " in b
               and "calls zn_msghandler_free()" in b for b in bad), bad
