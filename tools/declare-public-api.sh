#!/usr/bin/env bash
# Appends every symbol that RS0016 reports as undeclared to the project's PublicAPI.Unshipped.txt, after a
# review of the public surface: run it, then read the diff of PublicAPI.Unshipped.txt before committing.
#   bash tools/declare-public-api.sh src/Azure
set -euo pipefail
project_dir="$1"
cd "$project_dir"
log=$(dotnet build -c Release --nologo -v q --no-incremental 2>&1 || true)
echo "$log" | grep "error RS0016" | sed -n "s/.*Symbol '\(.*\)' is not part of the declared public API.*\[\(.*\)\]/\2|\1/p" | sort -u |
while IFS='|' read -r csproj symbol; do
  file="$(dirname "$csproj")/PublicAPI.Unshipped.txt"
  grep -qxF -- "$symbol" "$file" || echo "$symbol" >> "$file"
done
echo "$log" | grep -cE "error RS0016" || true
