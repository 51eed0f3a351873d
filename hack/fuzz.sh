#!/usr/bin/env bash
# Runs every Go fuzz target of the module (each func FuzzXxx of a _test.go
# file) for the given time: `hack/fuzz.sh 4s` is hack/test.sh's short run,
# `hack/fuzz.sh 10m` a longer one by hand. The targets are found, not
# listed, so a new one is run without editing this file. A failing input
# is written to testdata/fuzz/<target>/ of its package and the run stops:
# once fixed, keep it there as a regression test (go test runs it).
# FUZZ_PARALLEL sets the workers per target (default: the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-4s}
parallel=${FUZZ_PARALLEL:-$(nproc)}
for file in $(grep -rl --include='*_test.go' '^func Fuzz' cmd internal pkg | sort); do
	dir=./$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz $dir $target for $fuzztime"
		for attempt in 1 2; do
			if out=$(go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" -parallel "$parallel" "$dir" 2>&1); then
				break
			fi
			# Go's fuzz coordinator (before 1.27, go.dev/issue/75804) can
			# fail a run at its -fuzztime deadline with a bare "context
			# deadline exceeded" on a loaded machine, with no input found:
			# that run is made once more. A failing input always fails.
			if [ "$attempt" = 1 ] && ! grep -q 'Failing input written' <<<"$out" && grep -q 'context deadline exceeded' <<<"$out"; then
				echo "fuzz $dir $target: the fuzz coordinator's deadline race (no failing input): once more"
				continue
			fi
			echo "$out" >&2
			exit 1
		done
	done
done
