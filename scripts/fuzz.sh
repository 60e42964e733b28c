#!/usr/bin/env bash
# Runs every fuzz target of the module, one after another, for the given time each:
#   scripts/fuzz.sh 10m   (make fuzz)
#   scripts/fuzz.sh 5s    (make test: a smoke run of every target)
# A failing input is written by go test to <package>/testdata/fuzz/<Target>/, where it becomes a
# regression case that plain `go test` replays from then on. Exits non-zero if any target failed;
# the others still run.
set -euo pipefail

fuzztime="${1:-10m}"
cd "$(dirname "$0")/.."

# Packages whose test files declare a candidate; `go test -list` then says what really is a fuzz
# target (a func FuzzXxx(*testing.F) that compiles), so nothing is guessed from text alone.
# Listing only these packages saves linking a test binary for every package of the module.
candidates=()
while read -r dir pkg files; do
	for f in $files; do
		if grep -qE '^func Fuzz[A-Z0-9_]' "$dir/$f"; then
			candidates+=("$pkg")
			break
		fi
	done
done < <(go list -f '{{.Dir}} {{.ImportPath}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...)

if [ "${#candidates[@]}" -eq 0 ]; then
	echo "fuzz: no fuzz targets in the module" >&2
	exit 1
fi

# `go test -list` prints each package's matching names, then "ok <package> <time>". A package
# that does not build is a failure: its targets cannot run.
if ! listing=$(go test -list '^Fuzz' -run '^$' "${candidates[@]}" 2>&1); then
	echo "$listing" >&2
	echo "fuzz: listing the fuzz targets failed" >&2
	exit 1
fi
targets=()
names=()
while read -r line; do
	case "$line" in
	Fuzz*) names+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for n in "${names[@]}"; do targets+=("$pkg $n"); done
		names=()
		;;
	esac
done <<<"$listing"

echo "fuzz: ${#targets[@]} targets, ${fuzztime} each"
failed=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "fuzz: $name ($pkg)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
		failed+=("$name ($pkg)")
	fi
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz: FAILED: ${failed[*]}; the failing inputs are under each package's testdata/fuzz/" >&2
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
