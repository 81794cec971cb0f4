#!/bin/sh
# Make sure the `pytest` command exists. As root on Debian, install it from
# Debian's archive (python3-pytest); otherwise say exactly what to run.
command -v pytest >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "pytest is missing: installing Debian's python3-pytest"
    apt-get update -qq && apt-get install -y -qq python3-pytest >/dev/null &&
        command -v pytest >/dev/null 2>&1 && exit 0
fi
echo "pytest is missing. Install it with:" >&2
echo "    sudo apt-get install python3-pytest" >&2
exit 1
