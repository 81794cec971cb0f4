#!/bin/sh
# Print a compile_commands.json for clangd: every C file of common/ and of
# the stages given, with the flags of common/flags.mk.
root=$(cd "$(dirname "$0")/.." && pwd)
flags="-std=c11 -Wall -Wextra -Wpedantic -pthread -D_POSIX_C_SOURCE=200809L"
sep=""
echo "["
for f in "$root"/common/*.c "$root"/common/tests/*.c; do
    printf '%s  {"directory": "%s/common", "file": "%s",\n   "command": "cc %s -I%s/common -c %s"}' \
        "$sep" "$root" "$f" "$flags" "$root" "$f"
    sep=",
"
done
for s in "$@"; do
    for f in "$root/$s"/zinc/*.c "$root/$s"/demo/*.c; do
        printf '%s  {"directory": "%s/%s", "file": "%s",\n   "command": "cc %s -DZN_VERSION=\\\"%s\\\" -I%s/%s -I%s/common -c %s"}' \
            "$sep" "$root" "$s" "$f" "$flags" "$s" "$root" "$s" "$root" "$f"
    done
done
printf '\n]\n'
