#!/usr/bin/env bash
# Runs the benchmarks and writes ../BENCHMARKS.md with the command, the
# machine and the figures.
set -euo pipefail
cd "$(dirname "$0")"
cmd="go test -run='^\$' -bench=. -benchmem -count=1 -benchtime=2s ./..."
out=$(eval "$cmd" 2>&1 | tee /dev/stderr)
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d)."
  echo
  echo "- command: \`cd bench && $cmd\`"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "- $(go version)"
  echo
  echo "## Messaging over the in-memory transport"
  echo
  echo "Two nodes in one process, mesh layer only (no gossip), echo handler."
  echo "\`MemRequest\`: sequential round trips (p50/p99 per request);"
  echo "\`MemRequestParallel\`: 64 concurrent callers;"
  echo "\`MemSend\`: one-way messages, timed until the last one is handled."
  echo
  echo '```'
  echo "$out" | grep -E '^(Benchmark|goos|goarch|cpu|pkg)'
  echo '```'
} > ../BENCHMARKS.md
echo "wrote BENCHMARKS.md"
