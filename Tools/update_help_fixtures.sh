#!/usr/bin/env bash
# Regenerates Tests/CommandTests/Fixtures/help/*.txt from the built `lethe` (the texts
# HelpTextTests compares with). Run after changing a command's options or help, and review
# the diff: it is what users will read.
#   bash Tools/update_help_fixtures.sh [.build/release/lethe]
set -euo pipefail
cd "$(dirname "$0")/.."
lethe="${1:-.build/release/lethe}"
out=Tests/CommandTests/Fixtures/help
mkdir -p "$out"
rm -f "$out"/*.txt
while read -r command; do
    name=$(echo "${command:-lethe}" | tr ' ' '-')
    # shellcheck disable=SC2086
    COLUMNS=100 "$lethe" $command --help > "$out/$name.txt"
done < Tests/CommandTests/Fixtures/commands.txt
echo "wrote $(ls "$out" | wc -l) help texts to $out"
