#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module (each func Fuzz* in a
# _test.go file, found anew each run, so a new target is run without
# being listed anywhere), one `go test -fuzz` invocation per target, for
# FUZZTIME each (default 5s), and prints how many inputs each tried.
# A target that fails stops nothing: all run, the failures are listed and
# the script exits 1; the failing input is left in the package's
# testdata/fuzz/<target>/ to be committed with the fix.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5s}
GO=${GO:-go}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

mapfile -t files < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sort)
failed=()
printf '%-28s %-34s %12s %10s %s\n' target package execs execs/s "new interesting (corpus)"
total=0
n=0
for f in "${files[@]}"; do
	dir=$(dirname "$f")
	for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
		out="$log/$name.$(echo "$dir" | tr / _)"
		corpus="$dir/testdata/fuzz/$name"
		before=$(ls "$corpus" 2>/dev/null | sort)
		if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$dir" >"$out" 2>&1; then
			after=$(ls "$corpus" 2>/dev/null | sort)
			# Go 1.26's fuzz coordinator can report the end of -fuzztime
			# itself as a failure ("context deadline exceeded", no failing
			# input written: golang/go#75804, fixed in Go 1.27). Only that
			# exact outcome is let through; a failing input always is not.
			if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out" &&
				! grep -qE '^--- FAIL: .*/|Failing input written|panic:' "$out"; then
				echo "--- $name in $dir: stopped by Go's fuzztime race (golang/go#75804), no failing input; not a failure"
			else
				failed+=("$name in $dir")
				echo "--- $name in $dir failed:"
				grep -v '^fuzz: elapsed' "$out" | head -40
			fi
		fi
		# The last progress line: "fuzz: elapsed: 5s, execs: 123 (25/sec), new interesting: 4 (total: 10)".
		last=$(grep '^fuzz: elapsed' "$out" | tail -1)
		execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
		rate=$(sed -nE 's/.*execs: [0-9]+ \(([0-9]+)\/sec\).*/\1/p' <<<"$last")
		interesting=$(sed -nE 's/.*new interesting: (.*)/\1/p' <<<"$last")
		elapsed=$(sed -nE 's/^fuzz: elapsed: ([0-9hms.]+),.*/\1/p' <<<"$last")
		if [ -n "$execs" ] && [ -n "$elapsed" ]; then
			# The rate of the whole run, not of the last tick.
			secs=$(awk -v e="$elapsed" 'BEGIN{ s=0; n=split(e,a,/[hms]/); if (e ~ /h/) s+=a[1]*3600+a[2]*60+a[3]; else if (e ~ /m/) s+=a[1]*60+a[2]; else s=a[1]; print (s>0?s:1) }')
			rate=$(awk -v n="$execs" -v s="$secs" 'BEGIN{ printf "%d", n/s }')
		fi
		total=$((total + ${execs:-0}))
		n=$((n + 1))
		printf '%-28s %-34s %12s %10s %s\n' "$name" "${dir#./}" "${execs:-?}" "${rate:-?}" "${interesting:-?}"
	done
done
echo "fuzz: $n targets, $total executions in all, FUZZTIME=$FUZZTIME per target"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: FAILED: %s\n' "${failed[@]}"
	exit 1
fi
