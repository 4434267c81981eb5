#!/usr/bin/env python3
"""check_handlers.py — every command handler has its row in schemas/commands.def, and every
row's handler exists.

usage: check_handlers.py DEF FOLDER...     check DEF against the C files under the folders
       check_handlers.py --expect DEF FOLDER...   the check's own test (see below)

A handler is a function defined with the signature of ab_handler (engine/core/engine.h):
    int NAME(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
The engine's dispatch table and the handlers' prototypes are built from the rows of
commands.def, so a row whose handler is missing already fails the link; this check says
which row, and catches the other direction, which nothing else would: a handler that no row
names is never dispatched (a command half added, or a row deleted without its handler). A
function with that signature that is static is a file's own helper, not a handler; a
handler that is static while a row names it would not link either, and is reported too.

--expect: every /* EXPECT: NAME */ comment in DEF and in the C files names a handler the
check must report; exits 0 when it reports exactly those (tests/drift/strays/ is its
fixture: ctest drift_handlers_catches_strays).

It is a text check, not a compiler: it reads the files with their comments removed and
relies on clang-format's layout of a definition (its parameter list, then its brace).
"""

import os
import re
import sys

ROW = re.compile(r'\bAB_COMMAND\(\s*(\w+)\s*,\s*"([^"]*)"\s*,\s*"[^"]*"\s*,\s*(\w+)\s*,')
HANDLER = re.compile(
    r'^(static\s+)?int\s+(\w+)\s*\(\s*ab_ctx\s*\*\s*\w+\s*,\s*msgpack_packer\s*\*\s*\w+\s*,'
    r'\s*ab_error\s*\*\s*\w+\s*\)\s*\{', re.M)
EXPECT = re.compile(r'/\*\s*EXPECT:\s*(\w+)')
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)


def strip_comments(text):
    """The text without its comments, each replaced by as many line breaks as it held."""
    return COMMENT.sub(lambda m: '\n' * m.group(0).count('\n'), text)


def c_files(folders):
    for folder in folders:
        for top, _, names in os.walk(folder):
            for name in sorted(names):
                if name.endswith('.c'):
                    yield os.path.join(top, name)


def problems(def_path, folders):
    """[(handler name, what is wrong)] for def_path against the C files under folders."""
    rows = {}
    with open(def_path, encoding='utf-8') as f:
        for m in ROW.finditer(strip_comments(f.read())):
            rows.setdefault(m.group(3), []).append(f'{m.group(1)} ({m.group(2)})')
    if not rows:
        return [('', f'{def_path} has no AB_COMMAND row: is it the command catalog?')]
    defined, out = {}, []
    for path in c_files(folders):
        with open(path, encoding='utf-8') as f:
            text = strip_comments(f.read())
        for m in HANDLER.finditer(text):
            line = text.count('\n', 0, m.start()) + 1
            name, static = m.group(2), bool(m.group(1))
            where = f'{path}:{line}'
            if name in rows and static:
                out.append((name, f'{name} ({where}) is static, but {", ".join(rows[name])} '
                                  f'in {def_path} names it as its handler'))
            elif name in rows:
                defined[name] = where
            elif not static:
                out.append((name, f'{name} ({where}) is a command handler (its signature) '
                                  f'with no row in {def_path}: add the row '
                                  '(docs/architecture.md, "Adding a command"), or make it '
                                  'static if it is a helper of its file'))
    for name, users in sorted(rows.items()):
        if len(users) > 1:
            out.append((name, f'{name} is the handler of {len(users)} rows of {def_path}: '
                              f'{", ".join(users)}'))
        if name not in defined and not any(p[0] == name for p in out):
            out.append((name, f'{", ".join(users)} in {def_path} names the handler {name}, '
                              f'which no C file under {" ".join(folders)} defines'))
    return out


def expected(def_path, folders):
    names = set()
    for path in [def_path, *c_files(folders)]:
        with open(path, encoding='utf-8') as f:
            names.update(EXPECT.findall(f.read()))
    return names


def main(argv):
    expect = argv[1:2] == ['--expect']
    args = argv[2:] if expect else argv[1:]
    if len(args) < 2:
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    found = problems(args[0], args[1:])
    if expect:
        want, got = expected(args[0], args[1:]), {name for name, _ in found}
        for name, why in found:
            print(f'reported: {why}')
        if want != got or not want:
            print(f'DRIFT CHECK BROKEN: expected reports for {sorted(want)}, '
                  f'got {sorted(got)}', file=sys.stderr)
            return 1
        print(f'check_handlers.py reports each of the {len(want)} planted strays')
        return 0
    for _, why in found:
        print(f'DRIFT: {why}', file=sys.stderr)
    if found:
        return 1
    with open(args[0], encoding='utf-8') as f:
        n = len(ROW.findall(strip_comments(f.read())))
    print(f'every row of {args[0]} has its handler and every handler its row ({n} commands)')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
