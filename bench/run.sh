#!/usr/bin/env bash
# Runs the benchmarks and writes ../BENCHMARKS.md with the commands, the
# machine, the figures and the ratios against the peers measured in the
# same run.
#
# `./run.sh replication` runs only the replication benchmarks
# (BenchmarkRebalance with the large cases, BenchmarkReplicated) and
# replaces only their sections of ../BENCHMARKS.md (between the
# replication markers; appended when the file has none).
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-all}
case $mode in
all | replication) ;;
*) echo "usage: $0 [all|replication]" >&2; exit 2 ;;
esac
count=${BENCH_COUNT:-3}
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
mesh_cmd="go test -run='^\$' -bench='^BenchmarkMem(Request|Send)' -benchmem -count=1 -benchtime=2s ."
rpc_cmd="go test -run='^\$' -bench='^BenchmarkRPC\$' -benchmem -count=$count -benchtime=2s ."
local_cmd="go test -run='^\$' -bench='^BenchmarkLocalGet\$' -benchmem -count=$count -benchtime=1s ."
memory_cmd="go test -run='^\$' -bench='^BenchmarkMemoryPerEntry\$' -count=1 -benchtime=1x ."
remote_cmd="go test -run='^\$' -bench='^BenchmarkRemote\$' -benchmem -count=$count -benchtime=2s ."
# The replication benchmarks: BenchmarkRebalance once per key count (its
# large cases, 100k and 1M keys, need MYCORRIZAL_BENCH_LARGE=1; about 3
# minutes in all when the sync loop is idle between rounds, each phase
# bounded at 5 minutes), BenchmarkReplicated like the remote comparison.
rebalance_cmd="MYCORRIZAL_BENCH_LARGE=1 go test -run='^\$' -bench='^BenchmarkRebalance\$' -count=1 -benchtime=1x -timeout=60m ."
replicated_cmd="go test -run='^\$' -bench='^BenchmarkReplicated\$' -benchmem -count=$count -benchtime=2s ."
if [[ $mode == all ]]; then
  mesh_out=$(eval "$mesh_cmd" 2>&1 | tee /dev/stderr)
  rpc_out=$(eval "$rpc_cmd" 2>&1 | tee /dev/stderr)
  local_out=$(eval "$local_cmd" 2>&1 | tee /dev/stderr)
  memory_out=$(eval "$memory_cmd" 2>&1 | tee /dev/stderr)
  remote_out=$(eval "$remote_cmd" 2>&1 | tee /dev/stderr)
else
  local_out=""
fi
# A case that fails (a phase over its 5-minute bound) shows in the table
# as failed, with the reason in the raw output; the report goes on.
rebalance_out=$(eval "$rebalance_cmd" 2>&1 | tee /dev/stderr) || true
replicated_out=$(eval "$replicated_cmd" 2>&1 | tee /dev/stderr)

procs=$(awk '/^Benchmark/ { n = $1; sub(/.*-/, "", n); print n; exit }' <<<"$local_out$replicated_out")
procs=${procs:-1}
modver() { go list -m -f '{{.Version}}' "$1" 2>/dev/null || echo "?"; }
if command -v redis-server >/dev/null; then
  redis_version=$(redis-server --version | grep -oE 'v=[^ ]+' | sed 's/^v=//')
else
  redis_version="(not installed, so skipped)"
fi

# medians reads benchmark output and prints, for each benchmark (name
# without the -GOMAXPROCS suffix) and unit, the median over the runs:
# "name unit value".
medians() {
  awk '
    /^Benchmark/ {
      name = $1; sub(/-[0-9]+$/, "", name)
      for (i = 3; i < NF; i += 2) {
        key = name SUBSEP $(i+1)
        if (!(key in vals)) order[++n] = key
        vals[key] = vals[key] " " $i
      }
    }
    function median(list,   a, m, i, j, t) {
      m = split(list, a, " ")
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return a[int((m + 1) / 2)]
    }
    END { for (k = 1; k <= n; k++) { split(order[k], p, SUBSEP); print p[1], p[2], median(vals[order[k]]) } }'
}

# Shared awk helpers for the tables below: v(name, unit) is a median or ""
# when missing; num/ratio format a figure or "n/a".
awk_lib='
  { m[$1, $2] = $3 }
  function v(name, unit) { return ((name, unit) in m) ? m[name, unit] : "" }
  function num(x, fmt) { return x == "" ? "n/a" : sprintf(fmt, x) }
  function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "n/a" : sprintf("%.2fx", a / b) }
  function met(r, op, target,   x) {
    if (r == "n/a") return "n/a"
    x = substr(r, 1, length(r) - 1) + 0
    return (op == "<=" ? x <= target : x >= target) ? "met" : "not met"
  }
  function judged(r, op, target) { return r == "n/a" ? r : r " (" met(r, op, target) ")" }
'

# local_table prints each system's median Get ns/op sequential and
# parallel, the ratios to otter, the scaling and the allocations.
local_table() {
  medians <<<"$local_out" | awk "$awk_lib"'
    END {
      print "| system | seq ns/op | seq vs otter | parallel ns/op | parallel vs otter | scaling (seq/parallel) | allocs/op seq, parallel |"
      print "|---|---|---|---|---|---|---|"
      os = v("BenchmarkLocalGet/sys=otter/mode=seq", "ns/op"); op = v("BenchmarkLocalGet/sys=otter/mode=parallel", "ns/op")
      split("mycorrizal otter lru", systems, " ")
      for (k = 1; k <= 3; k++) {
        s = "BenchmarkLocalGet/sys=" systems[k]
        sq = v(s "/mode=seq", "ns/op"); pa = v(s "/mode=parallel", "ns/op")
        printf "| %s | %s | %s | %s | %s | %s | %s, %s |\n", systems[k], num(sq, "%.1f"), ratio(sq, os), num(pa, "%.1f"), ratio(pa, op), ratio(sq, pa),
          num(v(s "/mode=seq", "allocs/op"), "%d"), num(v(s "/mode=parallel", "allocs/op"), "%d")
      }
    }'
}

# local_verdict states the local targets as met or not.
local_verdict() {
  medians <<<"$local_out" | awk -v procs="$procs" "$awk_lib"'
    END {
      s = "BenchmarkLocalGet/sys=mycorrizal/mode="; o = "BenchmarkLocalGet/sys=otter/mode="
      rs = ratio(v(s "seq", "ns/op"), v(o "seq", "ns/op")); rp = ratio(v(s "parallel", "ns/op"), v(o "parallel", "ns/op"))
      sc = ratio(v(s "seq", "ns/op"), v(s "parallel", "ns/op"))
      printf "- ns/op at most 1.50x otter'"'"'s: sequential %s (%s), parallel %s (%s)\n", rs, met(rs, "<=", 1.5), rp, met(rp, "<=", 1.5)
      a1 = v(s "seq", "allocs/op"); a2 = v(s "parallel", "allocs/op")
      printf "- 0 allocs/op: %s, %s (%s)\n", num(a1, "%d"), num(a2, "%d"), (a1 == "0" && a2 == "0") ? "met" : "not met"
      printf "- scaling to %d cores: %s (linear would be %d.00x)\n", procs, sc, procs
    }'
}

# memory_table prints each system's heap overhead per entry.
memory_table() {
  medians <<<"$memory_out" | awk "$awk_lib"'
    END {
      print "| system | overhead per entry (B) | target | Olric v0.6.1 |"
      print "|---|---|---|---|"
      x = v("BenchmarkMemoryPerEntry/sys=mycorrizal", "B/entry-overhead")
      printf "| mycorrizal | %s | at most 80 B (%s) | 231 B |\n", num(x, "%.1f"), x == "" ? "n/a" : (x + 0 <= 80 ? "met" : "not met")
      printf "| otter | %s | | |\n", num(v("BenchmarkMemoryPerEntry/sys=otter", "B/entry-overhead"), "%.1f")
    }'
}

# remote_table prints, per operation, the sequential p50 and p99 and the
# 64-caller ops/s of each system, the ratios mycorrizal/Redis and the bar
# Olric v0.6.1 set against Redis in the same set-up.
remote_table() {
  medians <<<"$remote_out" | awk "$awk_lib"'
    END {
      print "| op | p50 mycorrizal (µs) | p50 Redis (µs) | p50 ratio | Olric p50 ratio | p99 mycorrizal (µs) | p99 Redis (µs) | 64-caller ops/s mycorrizal | 64-caller ops/s Redis | ops/s ratio | Olric ops/s ratio |"
      print "|---|---|---|---|---|---|---|---|---|---|---|"
      split("get set", ops, " "); split("GET SET", names, " ")
      olricP["get"] = 0.28; olricO["get"] = 1.44; olricP["set"] = 0.26; olricO["set"] = 1.61
      for (k = 1; k <= 2; k++) {
        op = ops[k]; s1 = "BenchmarkRemote/op=" op "/callers=1/sys="; s64 = "BenchmarkRemote/op=" op "/callers=64/sys="
        mp = v(s1 "mycorrizal", "p50-µs"); rp = v(s1 "redis", "p50-µs")
        mo = v(s64 "mycorrizal", "ops/s"); ro = v(s64 "redis", "ops/s")
        pr = ratio(mp, rp); orr = ratio(mo, ro)
        printf "| %s | %s | %s | %s | %.2fx | %s | %s | %s | %s | %s | %.2fx |\n", names[k],
          num(mp, "%.1f"), num(rp, "%.1f"), judged(pr, "<=", olricP[op]), olricP[op],
          num(v(s1 "mycorrizal", "p99-µs"), "%.1f"), num(v(s1 "redis", "p99-µs"), "%.1f"),
          num(mo, "%.0f"), num(ro, "%.0f"), judged(orr, ">=", olricO[op]), olricO[op]
      }
      printf "\nKeys owned by a node other than the driving one: %s%%.\n", num(v("BenchmarkRemote/op=get/callers=1/sys=mycorrizal", "remote-%"), "%.1f")
    }'
}

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

# rebalance_table prints, per key count, BenchmarkRebalance's phases.
rebalance_table() {
  medians <<<"$rebalance_out" | awk "$awk_lib"'
    END {
      print "| keys | load (s) | load (keys/s) | join: new node ready (s) | join: rebalanced (s) | crash: detected (s) | crash: RF restored (s) | of which after detection (s) | idle CPU (% of a core) | idle sync rounds/s per node |"
      print "|---|---|---|---|---|---|---|---|---|---|"
      split("10k 100k 1M", sizes, " ")
      for (k = 1; k <= 3; k++) {
        s = "BenchmarkRebalance/keys=" sizes[k]
        if (v(s, "s/rebalance") == "") { printf "| %s | failed or not run (see the raw output) | | | | | | | | |\n", sizes[k]; continue }
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sizes[k],
          num(v(s, "s/load"), "%.2f"), num(v(s, "keys/s-load"), "%.0f"), num(v(s, "s/join-ready"), "%.2f"),
          num(v(s, "s/rebalance"), "%.2f"), num(v(s, "s/detect"), "%.2f"), num(v(s, "s/restore"), "%.2f"),
          num(v(s, "s/restore-after-detect"), "%.2f"), num(v(s, "idle-cpu-%"), "%.0f"), num(v(s, "idle-rounds/s"), "%.1f")
      }
      s = "BenchmarkRebalance/keys=1M"; j = v(s, "s/rebalance"); r = v(s, "s/restore-after-detect")
      printf "\n- 1M keys moved within 30 s: join %s s (%s), restore after detection %s s (%s)\n",
        num(j, "%.1f"), j == "" ? "n/a" : (j + 0 <= 30 ? "met" : "not met"), num(r, "%.1f"), r == "" ? "n/a" : (r + 0 <= 30 ? "met" : "not met")
    }'
}

# replicated_table prints, per operation and bucket, the 64-caller ops/s
# of the 5-node cluster and of Redis, their ratio and the other metrics,
# then the target.
replicated_table() {
  medians <<<"$replicated_out" | awk "$awk_lib"'
    END {
      print "| op | bucket | ops/s mycorrizal | ops/s Redis | ops/s ratio | sustained ops/s mycorrizal | sustained ratio | p50 mycorrizal (µs) | p50 Redis (µs) | p99 mycorrizal (µs) | p99 Redis (µs) | served locally | CPU mycorrizal (% of a core) | CPU of other processes (% of a core) |"
      print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
      split("get set", ops, " "); split("GET SET", names, " ")
      split("rf1 rf2w1 rf3w2", cfgs, " "); split("RF=1|RF=2, W=1|RF=3, W=2", labels, "|")
      for (k = 1; k <= 2; k++) {
        p = "BenchmarkReplicated/op=" ops[k] "/sys="; red = p "redis"
        ro = v(red, "ops/s")
        for (c = 1; c <= 3; c++) {
          my = p "mycorrizal-" cfgs[c]; mo = v(my, "ops/s"); so = v(my, "sustained-ops/s")
          if (so == "") so = mo
          printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", names[k], labels[c],
            num(mo, "%.0f"), num(ro, "%.0f"), ratio(mo, ro), num(so, "%.0f"), ratio(so, ro),
            num(v(my, "p50-µs"), "%.1f"), num(v(red, "p50-µs"), "%.1f"), num(v(my, "p99-µs"), "%.0f"), num(v(red, "p99-µs"), "%.0f"),
            num(v(my, "local-%"), "%.0f%%"), num(v(my, "cpu-%"), "%.0f"), num(v(my, "other-cpu-%"), "%.0f")
        }
      }
      g = ratio(v("BenchmarkReplicated/op=get/sys=mycorrizal-rf2w1", "ops/s"), v("BenchmarkReplicated/op=get/sys=redis", "ops/s"))
      st = ratio(v("BenchmarkReplicated/op=set/sys=mycorrizal-rf2w1", "ops/s"), v("BenchmarkReplicated/op=set/sys=redis", "ops/s"))
      printf "\n- RF=2/W=1 64-caller ops/s at least 0.60x Redis'"'"'s: GET %s (%s), SET %s (%s)\n", g, met(g, ">=", 0.6), st, met(st, ">=", 0.6)
      printf "- CPU of this process with the cluster loaded and idle: %s%% of a core; during the Redis runs, this process (go-redis) GET %s%%, SET %s%% and the other processes (redis-server and anything else) GET %s%%, SET %s%%\n",
        num(v("BenchmarkReplicated/op=idle/sys=mycorrizal", "cpu-%"), "%.0f"),
        num(v("BenchmarkReplicated/op=get/sys=redis", "cpu-%"), "%.0f"), num(v("BenchmarkReplicated/op=set/sys=redis", "cpu-%"), "%.0f"),
        num(v("BenchmarkReplicated/op=get/sys=redis", "other-cpu-%"), "%.0f"), num(v("BenchmarkReplicated/op=set/sys=redis", "other-cpu-%"), "%.0f")
    }'
}

# replication_sections prints the two replication sections, between
# markers so `./run.sh replication` can replace them alone.
replication_sections() {
  echo "<!-- replication:begin -->"
  echo "## Replication: rebalance and restore"
  echo
  echo "Real nodes in one process on the embedded defaults (memberlist gossip on its"
  echo "LAN profile, QUIC with mutual TLS 1.3 on loopback, certificates from a CA"
  echo "made for the run), one bucket of RF=3, W=2 (raw codec), 16-byte keys and"
  echo "100-byte values. Each run starts 4 nodes and loads the keys through them"
  echo "from 64 concurrent callers (load: until every key has its 3 copies). Join:"
  echo "a 5th node starts; rebalanced is the time from its Start until every node"
  echo "is synced, none holds a copy of a key it does not own and the 5 hold 3"
  echo "copies of every key in all. Crash: one node of the 5 is killed (its gossip"
  echo "stops without a leave message and its QUIC transport closes, so it hands"
  echo "nothing off); RF restored is the time from the kill until the 4 survivors"
  echo "are synced and hold 3 copies of every key again, detected the part until"
  echo "every survivor dropped the dead node from its view (memberlist's failure"
  echo "detection, LAN profile), and the rest is the re-replication itself. Idle:"
  echo "the 4 loaded nodes watched for 2 s after the load with no operation"
  echo "running (the process's CPU and the sync rounds each node ran; a stable"
  echo "cluster needs none between anti-entropy ticks, every 30 s). One run per"
  echo "key count."
  echo
  echo "Command: \`cd bench && $rebalance_cmd\`"
  echo
  rebalance_table
  echo
  echo "## Replicated throughput vs Redis"
  echo
  echo "Five nodes as above, three buckets (raw codec, R=1: a Get on a node that"
  echo "holds a copy is served from it without a network hop) of RF=1, RF=2 with"
  echo "W=1 and RF=3 with W=2, each holding the same 10,000 keys of 16 bytes with"
  echo "100-byte values; against Redis $redis_version started on loopback as in the remote"
  echo "comparison, go-redis with a pool of 64, measured before the nodes start so"
  echo "the cluster's background work does not slow it. 64 concurrent callers; operation i"
  echo "uses key i mod 10,000 through node i mod 5, so the callers spread over the"
  echo "nodes (served locally: the share of operations whose node holds a copy)."
  echo "ops/s counts acknowledged operations. A Set returns once W copies are"
  echo "written; the other replicas are written in the background, so sustained"
  echo "ops/s also counts the time those writes took to finish after the last Set"
  echo "(for Get it is ops/s). Medians of $count runs; ratios are mycorrizal / Redis"
  echo "(higher is better). CPU mycorrizal is this process's (the 5 nodes and the"
  echo "callers), out of ${procs}00%; CPU of other processes is the rest of the machine's"
  echo "meanwhile (near 0 on a quiet machine: a high figure means the run shared the"
  echo "cores with other work). Target: RF=2/W=1 GET and SET ops/s at least 0.60x"
  echo "Redis's."
  echo
  echo "Command: \`cd bench && $replicated_cmd\`"
  echo
  replicated_table
  echo
  echo "Load average (1, 5, 15 min) when the runs began: $load_start; when these sections were written: $(cut -d' ' -f1-3 /proc/loadavg). Other work on the machine shares its $(nproc) cores with the nodes."
  echo
  echo "<details><summary>raw output (rebalance, replicated)</summary>"
  echo
  echo '```'
  echo "$rebalance_out" | grep -E '^(Benchmark|cpu|.*--- (SKIP|FAIL)|.*_test\.go:[0-9]+: )' || true
  echo "$replicated_out" | grep -E '^(Benchmark|.*--- SKIP)' || true
  echo '```'
  echo "</details>"
  echo "<!-- replication:end -->"
}

if [[ $mode == replication ]]; then
  sections=$(replication_sections)
  if grep -q '^<!-- replication:begin -->$' ../BENCHMARKS.md 2>/dev/null; then
    SECTIONS="$sections" awk '
      /^<!-- replication:begin -->$/ { print ENVIRON["SECTIONS"]; skip = 1; next }
      /^<!-- replication:end -->$/ { skip = 0; next }
      !skip' ../BENCHMARKS.md > ../BENCHMARKS.md.new
    mv ../BENCHMARKS.md.new ../BENCHMARKS.md
  else
    { echo; echo "$sections"; } >> ../BENCHMARKS.md
  fi
  echo "wrote the replication sections of BENCHMARKS.md"
  exit 0
fi

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d)."
  echo
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "- $(go version)"
  echo "- load average (1, 5, 15 min) when the run started: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
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
  echo "## Distributed cache: local hit Get against otter and golang-lru"
  echo
  echo "100,000 entries of 16-byte keys and 100-byte values, all present, at the"
  echo "same capacity (100,000) in each cache, the same keys and values: Mycorrizal's"
  echo "default store (\`cache.Store\`, each bucket's local store; no expiry on the"
  echo "entries, raw \`[]byte\` values, \`Get\` returns the stored slice), otter"
  echo "$(modver github.com/maypok86/otter/v2) (\`Cache[string][]byte\` with \`MaximumSize\`, \`GetIfPresent\`) and golang-lru"
  echo "$(modver github.com/hashicorp/golang-lru/v2) \`expirable\` (\`NewLRU\` with the size and a TTL of an hour). Reads"
  echo "are scattered over all the keys in one fixed order. \`seq\`: one goroutine;"
  echo "\`parallel\`: \`RunParallel\` on GOMAXPROCS=$procs goroutines (ns/op is wall time per"
  echo "Get across them). Scaling is seq ns/op divided by parallel ns/op ($procs.00x"
  echo "would be linear). Medians of $count runs. Targets: at most 1.50x otter's"
  echo "ns/op, 0 allocs/op, near-linear scaling."
  echo
  echo "Command: \`cd bench && $local_cmd\`"
  echo
  local_table
  echo
  local_verdict
  echo
  echo "## Distributed cache: memory per entry"
  echo
  echo "Heap overhead per entry beyond the key and value bytes with 1,000,000 entries"
  echo "of 16-byte keys and 100-byte values: live heap (\`HeapAlloc\` after"
  echo "\`runtime.GC\`) after filling a new cache minus before, minus 116 bytes per"
  echo "entry held, divided by the entries held. Everything the cache keeps alive"
  echo "counts, size-class rounding included. Mycorrizal's store copies key and value"
  echo "into one allocation of its own; otter keeps the caller's key string and a"
  echo "value slice allocated per entry, as an application would. One run (the figure"
  echo "is deterministic to within a byte)."
  echo
  echo "Command: \`cd bench && $memory_cmd\`"
  echo
  memory_table
  echo
  echo "## Distributed cache: remote Get and Set against Redis"
  echo
  echo "Three Mycorrizal nodes in one process on the embedded defaults (memberlist"
  echo "gossip, QUIC with mutual TLS 1.3 on every link, loopback), one bucket (raw"
  echo "codec, one owner per key), 10,000 keys of 16 bytes with 100-byte values"
  echo "preloaded, every operation driven through the first node; against Redis"
  echo "$redis_version (Debian's redis-server, started by the benchmark on a loopback"
  echo "port with \`--save \"\" --appendonly no\`) through go-redis"
  echo "$(modver github.com/redis/go-redis/v9) with a pool of 64 from the same process. The same keys and values,"
  echo "the same run; each sub-benchmark cycles through the keys. p50/p99 are of"
  echo "one caller (sequential); ops/s of 64 concurrent callers. Medians of $count runs."
  echo "Ratios are mycorrizal / Redis (p50: lower is better; ops/s: higher is"
  echo "better). The bar is Olric v0.6.1 (the embedded Go peer: 3 embedded nodes in"
  echo "one process, replica count 1, no TLS) measured on this kind of machine in the"
  echo "same set-up: GET p50 0.28x Redis's and 64-caller GET ops/s 1.44x; Put 0.26x and"
  echo "1.61x. Target: at least as good as those ratios."
  echo
  echo "Command: \`cd bench && $remote_cmd\`"
  echo
  remote_table
  if ! command -v redis-server >/dev/null; then
    echo
    echo "The Redis side was skipped: redis-server is not installed and the benchmark"
    echo "could not install it (it runs apt-get install redis-server when run as root)."
  fi
  echo
  echo "<details><summary>raw output (local Get, memory, remote)</summary>"
  echo
  echo '```'
  echo "$local_out" | grep -E '^(Benchmark|cpu)'
  echo "$memory_out" | grep -E '^Benchmark'
  echo "$remote_out" | grep -E '^(Benchmark|.*--- SKIP|.*_test\.go:[0-9]+: )' || true
  echo '```'
  echo "</details>"
  echo
  replication_sections
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
