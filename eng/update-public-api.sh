#!/usr/bin/env bash
# Regenerates src/*/PublicAPI.Unshipped.txt from the code with the PublicApiAnalyzers code fix (RS0016 "add to public
# API"). Run after adding, removing, renaming or moving public types / members, then review and commit the diff.
#   eng/update-public-api.sh            rewrite Unshipped from scratch (entries already in Shipped stay in Shipped)
#   eng/update-public-api.sh Peft.Core  only that library
set -euo pipefail
cd "$(dirname "$0")/.."
libs=("$@"); [ ${#libs[@]} -eq 0 ] && libs=(Peft.Core Peft.Datasets Peft.Evaluate Peft.Transformers)
for lib in "${libs[@]}"; do
  printf '#nullable enable\n' > "src/$lib/PublicAPI.Unshipped.txt"
  dotnet format analyzers "src/$lib/$lib.csproj" --diagnostics RS0016 --severity warn -v q
  echo "$lib: $(($(wc -l < "src/$lib/PublicAPI.Unshipped.txt") - 1)) unshipped entries"
done
