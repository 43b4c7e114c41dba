#!/usr/bin/env bash
# Runs the benchmarks and writes ../BENCHMARKS.md with the commands, the
# machine, the figures and the ratios against the peers measured in the
# same run.
set -euo pipefail
cd "$(dirname "$0")"
count=${BENCH_COUNT:-3}
mesh_cmd="go test -run='^\$' -bench='^BenchmarkMem' -benchmem -count=1 -benchtime=2s ."
rpc_cmd="go test -run='^\$' -bench='^BenchmarkRPC\$' -benchmem -count=$count -benchtime=2s ."
mesh_out=$(eval "$mesh_cmd" 2>&1 | tee /dev/stderr)
rpc_out=$(eval "$rpc_cmd" 2>&1 | tee /dev/stderr)

# rpc_table prints, per payload size and caller count, the median p50 and
# ops/s of each system over the runs and the ratios mycorrizal/nats.
rpc_table() {
  awk '
    /^BenchmarkRPC\// {
      split($1, parts, "/"); size = parts[2]; callers = parts[3]; sys = parts[4]
      sub(/^size=/, "", size); sub(/^callers=/, "", callers); sub(/^sys=/, "", sys); sub(/-[0-9]+$/, "", sys)
      key = size " " callers
      if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      for (i = 2; i <= NF; i++) {
        if ($i == "p50-µs") p50[key, sys] = p50[key, sys] " " $(i-1)
        if ($i == "ops/s")  ops[key, sys] = ops[key, sys] " " $(i-1)
      }
    }
    function median(list,   a, m, i, j, t) {
      m = split(list, a, " ")
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return a[int((m + 1) / 2)]
    }
    END {
      print "| payload | callers | p50 mycorrizal (µs) | p50 NATS (µs) | p50 ratio | ops/s mycorrizal | ops/s NATS | ops/s ratio |"
      print "|---|---|---|---|---|---|---|---|"
      for (k = 1; k <= n; k++) {
        key = order[k]; split(key, kc, " ")
        mp = median(p50[key, "mycorrizal"]); np = median(p50[key, "nats"])
        mo = median(ops[key, "mycorrizal"]); no = median(ops[key, "nats"])
        printf "| %s | %s | %.1f | %.1f | %.2fx | %.0f | %.0f | %.2fx |\n", kc[1], kc[2], mp, np, mp / np, mo, no, mo / no
      }
    }' <<<"$rpc_out"
}

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d)."
  echo
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "- $(go version)"
  echo
  echo "## Request/response over QUIC against NATS"
  echo
  echo "Two Mycorrizal nodes in one process on the embedded defaults (memberlist"
  echo "gossip, QUIC with mutual TLS 1.3 on loopback, certificates from a CA made"
  echo "for the run) against an embedded NATS server (nats-server v2.15.3, nats.go"
  echo "v1.55.0, request-reply through the broker, plain TCP) on loopback, in the"
  echo "same run, with the same payloads and callers. An echo handler on the other"
  echo "side. Medians of $count runs; ratios are mycorrizal / NATS (p50: lower is"
  echo "better; ops/s: higher is better). Target: p50 ratio at most 1.00x and,"
  echo "at 64 callers, ops/s ratio at least 1.50x, at both payload sizes."
  echo
  echo "Command: \`cd bench && $rpc_cmd\`"
  echo
  rpc_table
  echo
  echo "<details><summary>raw output</summary>"
  echo
  echo '```'
  echo "$rpc_out" | grep -E '^(Benchmark|cpu)'
  echo '```'
  echo "</details>"
  echo
  echo "## Messaging over the in-memory transport"
  echo
  echo "Two nodes in one process, mesh layer only (no gossip), echo handler."
  echo "\`MemRequest\`: sequential round trips (p50/p99 per request);"
  echo "\`MemRequestParallel\`: 64 concurrent callers;"
  echo "\`MemSend\`: one-way messages, timed until the last one is handled."
  echo
  echo "Command: \`cd bench && $mesh_cmd\`"
  echo
  echo '```'
  echo "$mesh_out" | grep -E '^(Benchmark|cpu)'
  echo '```'
} > ../BENCHMARKS.md
echo "wrote BENCHMARKS.md"
