#!/bin/sh
# check_settings_drift.sh — docs/settings.md must be what the settings catalog generates.
#
# usage: check_settings_drift.sh ADMINBUS_CATALOG DOCS_SETTINGS_MD
# Prints the difference and exits 1 when they disagree.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 ADMINBUS_CATALOG DOCS_SETTINGS_MD" >&2
    exit 2
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if ! "$1" --settings >"$tmp"; then
    echo "DRIFT: adminbus-catalog --settings failed" >&2
    exit 1
fi
if ! cmp -s "$2" "$tmp"; then
    echo "DRIFT: $2 differs from adminbus-catalog --settings;" \
        "regenerate it: build/bin/adminbus-catalog --settings > docs/settings.md" >&2
    diff -u "$2" "$tmp" >&2
    exit 1
fi
echo "docs/settings.md agrees with the settings catalog ($(grep -c '^| `' "$tmp") settings)"
