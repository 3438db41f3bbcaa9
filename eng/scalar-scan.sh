#!/usr/bin/env bash
# Scans src/Peft.* for implicit TorchSharp.Scalar creation (see eng/ScalarScan/Program.cs); exits 1 if any is found.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build tests/Peft.Transformers.Tests -v q -nologo >/dev/null      # the referenced assemblies, TorchSharp.dll included
dotnet build eng/ScalarScan -v q -nologo >/dev/null
refs=tests/Peft.Transformers.Tests/bin/Debug/net10.0
rc=0
for lib in Peft.Core Peft.Transformers Peft.Datasets Peft.Evaluate; do
  dotnet eng/ScalarScan/bin/Debug/net10.0/ScalarScan.dll "$PWD/src/$lib" "$refs" "$@" 2>/dev/null | sed "s|^# |$lib: |" || rc=1
done
exit $rc
