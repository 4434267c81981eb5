#!/bin/sh
# check_drift.sh — the command catalog, adminctl's help and docs/commands.md must agree.
#
# usage: check_drift.sh ADMINBUS_CATALOG ADMINCTL DOCS_COMMANDS_MD
#   (a) `adminbus-catalog --markdown` equals docs/commands.md byte for byte;
#   (b) for every catalog command, `adminctl <cli words> --help` exits 0 and mentions
#       the summary and every argument's flag;
#   (c) `adminctl --help` lists every command's cli words.
# Prints every disagreement (with a diff or the offending help text) and exits 1.
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 ADMINBUS_CATALOG ADMINCTL DOCS_COMMANDS_MD" >&2
    exit 2
fi
catalog=$1
adminctl=$2
docs=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

problem() {
    echo "DRIFT: $*" >&2
    fail=1
}

# (a) the docs are the catalog's own words
if ! "$catalog" --markdown >"$tmp/commands.md"; then
    problem "adminbus-catalog --markdown failed"
elif ! cmp -s "$docs" "$tmp/commands.md"; then
    problem "$docs differs from adminbus-catalog --markdown;" \
        "regenerate it: build/bin/adminbus-catalog --markdown > docs/commands.md"
    diff -u "$docs" "$tmp/commands.md" >&2
fi

# every argument as "TYPE --flag", from the generated markdown (checked equal above)
awk '
    /^## `/ { type = $2; gsub(/`/, "", type); next }
    /^\| `/ { name = $2; gsub(/`/, "", name); gsub(/_/, "-", name); print type, "--" name }
' "$tmp/commands.md" >"$tmp/flags.txt"

if ! "$catalog" --list >"$tmp/list.tsv" || [ ! -s "$tmp/list.tsv" ]; then
    problem "adminbus-catalog --list failed or listed nothing"
fi

# (c) the overall help lists every command
if ! "$adminctl" --help >"$tmp/help.txt" 2>&1; then
    problem "adminctl --help did not exit 0"
fi

tab=$(printf '\t')
while IFS="$tab" read -r type cli summary; do
    if ! grep -qE "^  $cli( |\$)" "$tmp/help.txt"; then
        problem "adminctl --help does not list '$cli' ($type)"
    fi
    # (b) each command's help: exit 0, its summary, every flag
    bad=0
    # shellcheck disable=SC2086 # the cli words are meant to split
    if ! "$adminctl" $cli --help >"$tmp/cmd.txt" 2>&1; then
        problem "adminctl $cli --help did not exit 0"
        bad=1
    fi
    if ! grep -qF -- "$summary" "$tmp/cmd.txt"; then
        problem "adminctl $cli --help does not mention the summary '$summary'"
        bad=1
    fi
    for flag in $(awk -v t="$type" '$1 == t { print $2 }' "$tmp/flags.txt"); do
        if ! grep -qE -- "(^|[^a-z0-9-])$flag([^a-z0-9-]|\$)" "$tmp/cmd.txt"; then
            problem "adminctl $cli --help does not mention $flag"
            bad=1
        fi
    done
    if [ $bad -ne 0 ]; then
        echo "---- adminctl $cli --help ----" >&2
        cat "$tmp/cmd.txt" >&2
    fi
done <"$tmp/list.tsv"

if [ $fail -ne 0 ]; then
    echo "---- adminctl --help ----" >&2
    cat "$tmp/help.txt" >&2
    exit 1
fi
echo "catalog, adminctl help and docs/commands.md agree ($(wc -l <"$tmp/list.tsv") commands)"
