#!/usr/bin/env python3
"""check_sql.py — no code path sends SQL built from values: prepared statements only.

usage: check_sql.py FOLDER...            check the C files under the folders
       check_sql.py --expect FILE...     the check's own test (see below)

Paths are reported, and BUILDERS below are keyed, relative to the current directory (run
it from the top of the tree). Each *.c and *.h is read with its comments removed; then:

  libmariadb  The calls that send SQL text (mysql_query, mysql_real_query, mysql_send_query,
              mysql_stmt_prepare, mariadb_stmt_execute_direct) appear only in engine/core/db.c,
              in the functions of DB_SENDERS. The escaping calls (mysql_real_escape_string
              and kin) appear nowhere: escaping a value means splicing it into SQL.
  building    Text that looks like SQL (a literal holding SELECT, WHERE, `= ?`, …) given to
              snprintf, strcat and kin is built only in the functions of BUILDERS, each
              listed with why its text is fixed. In them, every piece that is not fixed
              text (a literal, a macro made of literals, a choice ?: between those) is one
              the entry names; a format has no conversion but `%s` (no number, no `%.*s`
              of a sized value) and none between quotes ('%s'); and every call of a builder
              that takes SQL text as a parameter passes fixed text or a piece of its caller.
              An ab_list_query (ab_pack_list's query) is initialised the same way.
  db calls    The SQL argument of ab_db_run, ab_db_query, ab_db_scalar, ab_db_bulk is
              fixed text, a variable or a builder's result, never another call's result (a
              value's accessor); ab_db_exec binds nothing, so it gets fixed text only,
              except where EXEC_TEXT says why.

A new function that builds SQL fails this check until it is reviewed and added to BUILDERS.
It is a text check, not a compiler: it relies on clang-format's layout (a function's body
opens with a brace at the start of a line, after its parameter list).

--expect: every line of FILE that ends with `// expect-violation` must be reported and
no other line; exits 0 when so. tests/lint/violations.c holds one violation of each kind.
"""

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SENDS_SQL = ("mysql_query", "mysql_real_query", "mysql_send_query", "mysql_stmt_prepare",
             "mariadb_stmt_execute_direct", "mysql_stmt_execute_direct")
ESCAPES = ("mysql_real_escape_string", "mysql_real_escape_string_quote",
           "mysql_escape_string", "mysql_hex_string")

# engine/core/db.c: the only functions that hand SQL text to libmariadb.
DB_SENDERS = {
    "ab_db_exec": "runs a statement without parameters (callers: see `db calls`)",
    "s_stmt": "prepares the text it is given; values are bound afterwards",
    "s_session_setup": "literal SET statements",
    "s_create_database": "CREATE DATABASE `name`, the name checked by s_safe_identifier",
}


@dataclass
class Builder:
    why: str
    pieces: set = field(default_factory=set)  # non-literal expressions its SQL may hold
    params: dict = field(default_factory=dict)  # its SQL-text parameters: name → position


# (file, function) → Builder: every function that assembles SQL text at run time.
BUILDERS = {
    ("engine/core/db.c", "s_create_database"): Builder(
        "the database name of the DSN, checked by s_safe_identifier (letters, digits, _) "
        "and back-quoted", {"d->database", "`%s`"}),
    ("engine/core/handler.c", "ab_pack_list"): Builder(
        "an ab_list_query's parts, each checked where it is initialised",
        {"q->cols", "q->from", "q->where", "q->order"}),
    ("engine/commands/authkey.c", "s_find_owner"): Builder(
        "the key column chosen between two literals; the lock clause from the callers",
        params={"lock": 1}),
    ("engine/commands/authkey.c", "ab_authkey_list"): Builder(
        "the WHERE clause chosen among literals", {"where"}),
    ("engine/auth/identity.c", "s_read_chunk"): Builder("an IN list of placeholders"),
    ("engine/commands/job.c", "s_pack_page"): Builder(
        "select, table, WHERE and order from the callers",
        params={"select": 2, "table": 3, "where": 4, "order": 5}),
    ("engine/commands/job.c", "ab_job_list"): Builder(
        "appends literal `AND col = ?` filters", {"where"}),
    ("engine/jobs/jobs.c", "s_insert_jobs"): Builder(
        "n copies of a literal row of placeholders", {"row"}),
    ("engine/commands/login.c", "s_list_ips"): Builder(
        "the condition from the callers", params={"where": 2}),
    ("engine/commands/log.c", "s_where"): Builder(
        "appends the fragments of the literal table s_filters and literal filters",
        {"s_filters[i].fragment"}),
    ("engine/commands/log.c", "ab_log_search"): Builder(
        "the WHERE clause s_where built", {"where"}),
    ("engine/mail/mail.c", "s_count"): Builder(
        "the state condition from the callers", params={"states": 1}),
    ("engine/commands/org.c", "ab_org_list"): Builder(
        "the WHERE clause s_scope_where picks among literals", {"where"}),
    ("engine/commands/role.c", "s_find"): Builder(
        "the SELECT list s_select_cols built, a key column chosen between literals",
        {"cols"}),
    ("engine/commands/role.c", "s_select_cols"): Builder(
        "column names from the literal tables s_level_col and ab_role_perms",
        {"s_level_col[i]", "ab_role_perms[i]"}),
    ("engine/commands/role.c", "ab_role_add"): Builder(
        "column names from the literal tables s_level_col and ab_role_perms, and ?s",
        {"s_level_col[i]", "ab_role_perms[i]", "cols", "marks"}),
    ("engine/commands/role.c", "ab_role_edit"): Builder(
        "column names from the literal tables s_level_col and ab_role_perms",
        {"s_level_col[i]", "ab_role_perms[i]", "sets"}),
    ("engine/commands/role.c", "ab_role_list"): Builder(
        "the SELECT list s_select_cols built", {"cols"}),
    ("engine/commands/user.c", "s_find"): Builder(
        "the key column and the lock chosen between literals"),
    ("engine/commands/user.c", "ab_user_list"): Builder(
        "appends literal filters on aliases from the literal table alias[]",
        {"alias[i]", "where"}),
    ("engine/jobs/worker.c", "s_sql_in"): Builder(
        "a head and a tail from the callers around n placeholders",
        params={"head": 2, "tail": 4}),
    ("engine/jobs/worker.c", "s_sql_ids"): Builder(
        "passes its head and tail on to s_sql_in", params={"head": 2, "tail": 5}),
    # the check's own test (tests/lint/violations.c)
    ("tests/lint/violations.c", "s_builder"): Builder(
        "a column chosen between literals, a condition from its callers", params={"cond": 1}),
    ("tests/lint/violations.c", "s_bad_builder"): Builder(
        "(breaks the rules on purpose)", {"where"}),
}

# ab_db_exec given text that is not fixed: where, and why that is safe.
EXEC_TEXT = {
    ("engine/core/migrate.c", "s_run_script"):
        "the statements of the migrations compiled into the engine (schemas/migrations)",
}

# Structures that carry SQL text to a builder: name → positions of their SQL members.
SQL_STRUCTS = {"ab_list_query": (0, 1, 2, 3)}

BUILD_CALLS = ("snprintf", "sprintf", "vsnprintf", "vsprintf", "asprintf", "vasprintf",
               "strcat", "strncat", "strcpy", "strncpy", "stpcpy", "stpncpy")
FORMAT_ARG = {"snprintf": 2, "sprintf": 1, "vsnprintf": 2, "vsprintf": 1, "asprintf": 1,
              "vasprintf": 1}
DB_CALLS = ("ab_db_exec", "ab_db_run", "ab_db_query", "ab_db_scalar", "ab_db_bulk")

SQL_TEXT = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|REPLACE|WHERE|VALUES|ORDER BY|GROUP BY|LIMIT|JOIN|"
    r"FROM|SET|AND|OR|IN|LIKE|CREATE|DROP|ALTER|CALL|RETURNING|SAVEPOINT|ROLLBACK|COMMIT)\b"
    r"|= \?|\(\?|\?,|, \?")
CONVERSION = re.compile(
    r"%(?:%|[-+ #0']*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|j|z|t|L)?[a-zA-Z])")
QUOTED_CONVERSION = re.compile(r"(['\"`])%[^%'\"`]*\1")
IDENT = re.compile(r"[A-Za-z_]\w*")
MACRO_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


# --- reading C -----------------------------------------------------------------------------------


def skip_quoted(src, i):
    """Offset just past the string or character literal that starts at src[i]."""
    q, j = src[i], i + 1
    while j < len(src) and src[j] != q and src[j] != "\n":
        j += 2 if src[j] == "\\" else 1
    return j + 1


def strip_comments(src):
    """src with comments blanked (newlines kept, so offsets and lines stay); strings kept."""
    out, i, n = [], 0, len(src)
    while i < n:
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
        elif src[i] in "\"'":
            j = skip_quoted(src, i)
            out.append(src[i:j])
        else:
            j = i + 1
            out.append(src[i])
        i = j
    return "".join(out)


def blank_preprocessor(code):
    """code with preprocessor lines (and their continuation lines) blanked."""
    out, cont = [], False
    for line in code.split("\n"):
        directive = cont or line.lstrip().startswith("#")
        cont = directive and line.rstrip().endswith("\\")
        out.append(" " * len(line) if directive else line)
    return "\n".join(out)


def macros(code):
    """{name: (parameters or None, body)} of the #defines in code (comments removed)."""
    found = {}
    for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)(\([^)]*\))?((?:\\\n|[^\n])*)", code,
                         re.M):
        params = None if m.group(2) is None else [p.strip() for p in m.group(2)[1:-1].split(",")]
        found[m.group(1)] = (params, m.group(3).replace("\\\n", " ").strip())
    return found


def functions(code):
    """[(name, body_start, body_end)]: each brace at depth 0 whose header ends with a
    parameter list (not an initialiser: no '=' in the header)."""
    out, depth, head_start, name, start, i = [], 0, 0, None, 0, 0
    while i < len(code):
        c = code[i]
        if c in "\"'":
            i = skip_quoted(code, i)
            continue
        if c == "{":
            if depth == 0:
                head = code[head_start:i]
                m = re.search(r"(\w+)\s*\([^;{}]*\)\s*$", head)
                name = m.group(1) if m and "=" not in head[:m.start()] else None
                start = i
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                if name:
                    out.append((name, start, i))
                head_start = i + 1
        elif c == ";" and depth == 0:
            head_start = i + 1
        i += 1
    return out


def enclosing(funcs, at):
    return next((name for name, start, end in funcs if start <= at <= end), None)


def split_top(code, open_at, close=")"):
    """(parts, end): the comma-separated parts at the top level of the bracket that opens
    at code[open_at], stripped, and the offset of its closing bracket."""
    parts, cur, depth, i = [], [], 0, open_at + 1
    while i < len(code):
        c = code[i]
        if c in "\"'":
            j = skip_quoted(code, i)
            cur.append(code[i:j])
            i = j
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                parts.append("".join(cur).strip())
                return parts, i
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    return parts, i


def literal_text(expr):
    """The concatenated text of the string literals in expr."""
    out, i = [], 0
    while i < len(expr):
        if expr[i] in "\"'":
            j = skip_quoted(expr, i)
            if expr[i] == '"':
                out.append(expr[i + 1:j - 1])
            i = j
        else:
            i += 1
    return "".join(out)


def without_literals(expr):
    out, i = [], 0
    while i < len(expr):
        if expr[i] in "\"'":
            i = skip_quoted(expr, i)
            out.append('""')
        else:
            out.append(expr[i])
            i += 1
    return "".join(out)


def ternary(expr):
    """(then, else) when expr is `cond ? a : b` at the top level, else None."""
    depth, q, nest, i = 0, None, 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'":
            i = skip_quoted(expr, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c == "?":
            if q is None:
                q = i
            else:
                nest += 1
        elif depth == 0 and c == ":" and q is not None:
            if nest == 0:
                return expr[q + 1:i], expr[i + 1:]
            nest -= 1
        i += 1
    return None


class FixedText:
    """Whether an expression is fixed text: string literals side by side, macros whose
    bodies are fixed text (with fixed arguments), and choices `c ? a : b` between them."""

    def __init__(self, defs):
        self.defs = defs

    def __call__(self, expr, params=()):
        expr = expr.strip()
        while expr.startswith("(") and split_top(expr, 0)[1] == len(expr) - 1:
            expr = expr[1:-1].strip()
        if not expr:
            return False
        t = ternary(expr)
        if t:
            return self(t[0], params) and self(t[1], params)
        i = 0
        while i < len(expr):
            if expr[i].isspace():
                i += 1
                continue
            if expr[i] == '"':
                i = skip_quoted(expr, i)
                continue
            m = IDENT.match(expr, i)
            if not m:
                return False
            name, i = m.group(0), m.end()
            if name in params:
                continue
            if name not in self.defs or not MACRO_NAME.fullmatch(name):
                return False
            mparams, body = self.defs[name]
            if mparams is not None:
                rest = expr[i:].lstrip()
                if not rest.startswith("("):
                    return False
                args, end = split_top(expr, len(expr) - len(rest))
                if not all(self(a, params) for a in args):
                    return False
                i = end + 1
            if not self(body, mparams or ()):
                return False
        return True


# --- the checks ----------------------------------------------------------------------------------


class Check:
    def __init__(self, texts):
        self.texts = texts  # rel → source
        defs = {}
        for src in texts.values():
            defs.update(macros(strip_comments(src)))
        self.fixed = FixedText(defs)
        self.problems = []  # (rel, line, message)
        self.parsed = {}
        for rel, src in texts.items():
            flat = blank_preprocessor(strip_comments(src))
            self.parsed[rel] = (flat, functions(flat))

    def report(self, rel, at, what):
        line = self.parsed[rel][0].count("\n", 0, at) + 1
        self.problems.append((rel, line, what))

    def calls(self, names):
        """(rel, offset, function it is in, callee, arguments) of each call of names made
        inside a function body."""
        pattern = re.compile(rf"\b({'|'.join(map(re.escape, names))})\s*\(")
        for rel, (flat, funcs) in self.parsed.items():
            for m in pattern.finditer(flat):
                fn = enclosing(funcs, m.start())
                if fn is not None:
                    yield rel, m.start(), fn, m.group(1), split_top(flat, m.end() - 1)[0]

    def run(self):
        self.check_libmariadb()
        for rel, at, fn, call, args in self.calls(BUILD_CALLS):
            self.check_building(rel, at, fn, call, args)
        self.check_builder_calls()
        self.check_structs()
        for rel, at, fn, call, args in self.calls(DB_CALLS):
            if len(args) >= 2:
                self.check_db_call(rel, at, fn, call, args[1])
        self.check_lists()
        return self.problems

    def check_libmariadb(self):
        for rel, (flat, funcs) in self.parsed.items():
            for m in re.finditer(rf"\b({'|'.join(SENDS_SQL + ESCAPES)})\b", flat):
                name, fn = m.group(1), enclosing(funcs, m.start())
                if name in ESCAPES:
                    self.report(rel, m.start(), f"{name}: an escaped value is spliced into "
                                "SQL; bind it as a parameter (ab_param_*) instead")
                elif rel != "engine/core/db.c" or fn not in DB_SENDERS:
                    self.report(rel, m.start(), f"{name} in {fn or 'file scope'}: only "
                                f"engine/core/db.c's {', '.join(sorted(DB_SENDERS))} send SQL "
                                "text; use ab_db_* (engine/core/db.h)")

    def builder(self, rel, fn):
        b = BUILDERS.get((rel, fn))
        return b, (b.pieces | set(b.params) if b else set())

    def check_building(self, rel, at, fn, call, args):
        b, pieces = self.builder(rel, fn)
        sql = any(SQL_TEXT.search(literal_text(a)) for a in args)
        if not sql:
            # a builder appending something that is not text of its own: check the piece
            if b and call in ("strcat", "strncat", "strcpy", "strncpy", "stpcpy", "stpncpy"):
                self.check_pieces(rel, at, fn, call, args[1:2], pieces)
            return
        if b is None:
            self.report(rel, at, f"{call} builds SQL text in {fn}, which is not a reviewed "
                        "builder: bind values as parameters; if the text is fixed fragments "
                        "only, add the function to BUILDERS in tests/lint/check_sql.py "
                        "with why")
            return
        at_fmt = FORMAT_ARG.get(call)
        if at_fmt is None:
            self.check_pieces(rel, at, fn, call, args[1:2], pieces)
            return
        fmt = literal_text(args[at_fmt]) if len(args) > at_fmt else ""
        for conv in CONVERSION.findall(fmt):
            if conv not in ("%s", "%%"):
                self.report(rel, at, f"{call} in {fn}: {conv} puts a value into SQL text; "
                            "bind it as a parameter")
        for q in QUOTED_CONVERSION.finditer(fmt):
            if q.group(0) not in pieces:
                self.report(rel, at, f"{call} in {fn}: {q.group(0)} quotes a value into SQL "
                            "text; bind it as a parameter")
        if not self.fixed(args[at_fmt]) and args[at_fmt] not in pieces:
            self.report(rel, at, f"{call} in {fn}: the format is not fixed text")
        self.check_pieces(rel, at, fn, call, args[at_fmt + 1:], pieces)

    def check_pieces(self, rel, at, fn, call, exprs, pieces):
        for e in exprs:
            if e and not self.fixed(e) and e not in pieces:
                self.report(rel, at, f"{call} in {fn}: `{e}` goes into SQL text but is "
                            "neither fixed text nor a piece its BUILDERS entry names")

    def check_builder_calls(self):
        """Every call of a builder passes fixed text (or its caller's pieces) where the
        builder takes SQL text."""
        by_name = {}
        for (rel, fn), b in BUILDERS.items():
            if b.params:
                by_name.setdefault(fn, []).append((rel, b))
        if not by_name:
            return
        for rel, at, fn, callee, args in self.calls(list(by_name)):
            targets = [b for brel, b in by_name[callee] if brel == rel or
                       not callee.startswith("s_")]
            _, pieces = self.builder(rel, fn)
            for b in targets:
                for name, pos in b.params.items():
                    if pos < len(args) and not self.fixed(args[pos]) and args[pos] not in pieces:
                        self.report(rel, at, f"{callee} in {fn}: its SQL text `{name}` is "
                                    f"given `{args[pos]}`, neither fixed text nor a piece of "
                                    f"{fn}'s BUILDERS entry")

    def check_structs(self):
        for rel, (flat, funcs) in self.parsed.items():
            for name, positions in SQL_STRUCTS.items():
                for m in re.finditer(rf"\b{name}\s+\w+\s*=\s*\{{", flat):
                    fn = enclosing(funcs, m.start())
                    parts, _ = split_top(flat, m.end() - 1)
                    _, pieces = self.builder(rel, fn)
                    for pos in positions:
                        if pos < len(parts) and not self.fixed(parts[pos]) and \
                                parts[pos] not in pieces:
                            self.report(rel, m.start(), f"{name} in {fn}: `{parts[pos]}` goes "
                                        "into SQL text but is neither fixed text nor a piece "
                                        f"of {fn}'s BUILDERS entry")

    def check_db_call(self, rel, at, fn, call, sql):
        if self.fixed(sql):
            return
        if call == "ab_db_exec":
            if (rel, fn) not in EXEC_TEXT:
                self.report(rel, at, f"ab_db_exec in {fn} is given `{sql}`: it binds nothing, "
                            "so its text must be fixed")
            return
        builders = {f for _, f in BUILDERS}
        for m in re.finditer(r"\b(\w+)\s*\(", without_literals(sql)):
            if m.group(1) not in builders and m.group(1) != "sizeof":
                self.report(rel, at, f"{call} in {fn} is given the result of {m.group(1)}(): "
                            "SQL text comes from fixed text or a reviewed builder only")

    def check_lists(self):
        """The lists above name functions that exist: a rename must not leave them stale."""
        for (rel, fn) in list(BUILDERS) + list(EXEC_TEXT):
            if rel in self.parsed and fn not in {f for f, _, _ in self.parsed[rel][1]}:
                self.problems.append((rel, 0, f"tests/lint/check_sql.py names {fn}, which is "
                                      "not defined here any more: update the list"))
        if "engine/core/db.c" in self.parsed:
            defined = {f for f, _, _ in self.parsed["engine/core/db.c"][1]}
            for fn in sorted(set(DB_SENDERS) - defined):
                self.problems.append(("engine/core/db.c", 0, f"DB_SENDERS names {fn}, which is not "
                                      "defined here any more: update the list"))


def read_tree(paths):
    files = sorted({f for p in paths for f in (p.rglob("*") if p.is_dir() else [p])
                    if f.suffix in (".c", ".h") and f.is_file()})
    here = Path.cwd().resolve()
    texts = {}
    for f in files:
        try:
            rel = f.resolve().relative_to(here).as_posix()
        except ValueError:
            rel = f.as_posix()
        texts[rel] = f.read_text(errors="replace")
    return texts


def expect(texts, problems):
    want = {(rel, i + 1) for rel, src in texts.items() for i, line in enumerate(src.split("\n"))
            if line.rstrip().endswith("// expect-violation")}
    got = {(rel, line) for rel, line, _ in problems}
    for rel, line, what in problems:
        print(f"{rel}:{line}: {what}")
    for rel, line in sorted(want - got):
        print(f"check_sql --expect: {rel}:{line} is marked but was not reported")
    for rel, line in sorted(got - want):
        print(f"check_sql --expect: {rel}:{line} was reported but is not marked")
    print(f"check_sql --expect: {len(want)} marked, {len(want & got)} reported")
    return 0 if want and want == got else 1


def main(argv):
    expecting = argv[:1] == ["--expect"]
    paths = [Path(a) for a in argv[1 if expecting else 0:]]
    if not paths:
        print(__doc__.split("\n\n")[0] + "\n\nusage: check_sql.py [--expect] PATH...",
              file=sys.stderr)
        return 2
    texts = read_tree(paths)
    if not texts:
        print(f"check_sql: no C files in {' '.join(map(str, paths))}", file=sys.stderr)
        return 2
    problems = Check(texts).run()
    if expecting:
        return expect(texts, problems)
    for rel, line, what in problems:
        print(f"{rel}:{line}: {what}")
    builders = sum(rel in texts for rel, _ in BUILDERS)
    print(f"check_sql: {len(texts)} files, {builders} reviewed builders, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
