#!/usr/bin/env bash
# Builds the solution and runs every test project; prints one closing line "N passed, N failed"
# (summed over the TRX results) and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

results_dir="$(pwd)/artifacts/test-results"
rm -rf "$results_dir"
mkdir -p "$results_dir"

# Nothing native is installed: librdkafka (with its mock cluster) comes from the librdkafka.redist package.
# Azurite comes from npm (scripts/install-azurite.sh, below).
# PIPELINEDSL_TEST_FILTER narrows the run, e.g. "Lane!=Process" for the fast inner loop without child processes.
filter=()
if [ -n "${PIPELINEDSL_TEST_FILTER:-}" ]; then filter=(--filter "$PIPELINEDSL_TEST_FILTER"); fi

dotnet build PipelineDsl.sln -c Release --nologo -v minimal
build_status=$?
if [ $build_status -ne 0 ]; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

# Azurite (the Azure Storage emulator the Azure tests start on 127.0.0.1), pinned, into tools/azurite. If it
# cannot be installed, the Azure tests fail and say how to install it.
bash scripts/install-azurite.sh || echo "warning: Azurite could not be installed; the Azure tests will fail"
# Debian's Chromium, for the browser test of the streaming UI. If it cannot be installed, that test fails and says how.
bash scripts/install-chromium.sh || echo "warning: Chromium could not be installed; the UI test will fail"

test_status=0
# The sample test projects (users' tests of the samples, with PipelineDsl.Testing) run with the rest.
for project in tests/*/*.csproj samples/*.Tests/*.csproj; do
  name=$(basename "$project" .csproj)
  dotnet test "$project" -c Release --no-build --nologo \
    --logger "trx;LogFileName=${name}.trx" --results-directory "$results_dir" "${filter[@]}" \
    --blame-hang --blame-hang-timeout 10m || test_status=1
done

# The state suites again on the RocksDB state backend (tests/Shared/StateBackends): every state, crash, format and
# upgrade test of the runtime and every upgrade of the generator's tests must hold on both backends.
for project in tests/PipelineDsl.Runtime.Tests/PipelineDsl.Runtime.Tests.csproj tests/PipelineDsl.Generator.Tests/PipelineDsl.Generator.Tests.csproj; do
  name=$(basename "$project" .csproj)
  PIPELINEDSL_TEST_STATE_BACKEND=rocksdb dotnet test "$project" -c Release --no-build --nologo \
    --logger "trx;LogFileName=${name}.rocksdb.trx" --results-directory "$results_dir" "${filter[@]}" \
    --blame-hang --blame-hang-timeout 10m || test_status=1
done

passed=0
failed=0
skipped=0
for trx in "$results_dir"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(echo "$counters" | sed -n 's/.* passed="\([0-9]*\)".*/\1/p')
  f=$(echo "$counters" | sed -n 's/.* failed="\([0-9]*\)".*/\1/p')
  e=$(echo "$counters" | sed -n 's/.* error="\([0-9]*\)".*/\1/p')
  t=$(echo "$counters" | sed -n 's/.* total="\([0-9]*\)".*/\1/p')
  x=$(echo "$counters" | sed -n 's/.* executed="\([0-9]*\)".*/\1/p')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${e:-0}))
  skipped=$((skipped + ${t:-0} - ${x:-0}))
done

# Skipped tests are listed with their reasons: a skip must never pass for a success unnoticed.
if [ "$skipped" -gt 0 ] && command -v python3 >/dev/null 2>&1; then
  python3 - "$results_dir" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for trx in sorted(glob.glob(sys.argv[1] + "/*.trx")):
    for r in ET.parse(trx).getroot().iterfind(".//t:UnitTestResult[@outcome='NotExecuted']", ns):
        message = r.find("t:Output/t:ErrorInfo/t:Message", ns)
        print(f"skipped: {r.get('testName')}: {message.text.strip() if message is not None and message.text else '(no reason given)'}")
PY
fi

if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "no test results were found"
  failed=1
fi

if [ $test_status -ne 0 ] && [ "$failed" -eq 0 ]; then
  # dotnet test failed without a failing test (a crashed or hung host): count it.
  failed=1
fi

echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ] && [ $test_status -eq 0 ]
