#!/usr/bin/env bash
# The gateway's own statements against the floor, pgbench as the peer harness runs it (c=32,
# prepared), interleaved: floor, gateway, floor, gateway… Prints TPS per run and the median ratio.
# usage: bench/pgbench/run.sh [ROUNDS] [SECONDS]   (DATABASE_URL: a seeded database, default kasvu_peer)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
floor=$here/../../../shared/bench/peer/sql/pgbench_floor.sql
db=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/kasvu_peer}
rounds=${1:-3} seconds=${2:-12}
tps() { pgbench -n -M prepared -c 32 -j 2 -T "$seconds" -f "$1" "$db" 2>&1 | awk '/^tps/ {print $3}'; }
ratios=()
for r in $(seq "$rounds"); do
    f=$(tps "$floor"); g=$(tps "$here/gateway_sql.sql")
    ratio=$(python3 -c "print(f'{$g / $f:.2f}')")
    ratios+=("$ratio")
    echo "round $r: floor $f TPS, gateway's statements $g TPS, ratio $ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print "median ratio " a[int((NR+1)/2)]}'
