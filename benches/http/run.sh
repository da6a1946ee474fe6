#!/usr/bin/env bash
# Eligibility over HTTPS, with token authentication, under wrk on the same
# machine, beside a same-run baseline: the same server answering a constant
# (GET /v1/whoami) from the same router, through the same TLS, authentication
# middleware and routing, with no ledger work.
#
# Design target (issue 6): eligibility >= 60 % of the baseline's requests per
# second, and its p99 < 5 ms, with TLS and authentication on.
#
#   benches/http/run.sh [--persons N] [--duration S] [--connections C] [--threads T]
#                       [--warmup S] [--rounds R] [--seed S] [--also-plain] [--perf]
#
# The baseline and the eligibility runs are interleaved (baseline, eligibility,
# baseline, eligibility, ...) because the machine is shared and noisy; every
# run is reported, and each ratio is against the baseline of its own round.
#
# --also-plain  repeats the same rounds against the same data served with
#               --plain-http --no-auth, to separate TLS and authentication cost
#               from the ledger's.
# --perf        after the measured runs (not measured themselves): perf stat of
#               the (TLS) server during one more baseline and one more
#               eligibility run (server CPU time and context switches per
#               request), then a perf profile of an eligibility run (the
#               hottest symbols, and the split by shared object).
#
# The eligibility paths come from paths.jq (every insured number with a
# qualification valid today, checked to answer 200 with a qualification before
# measuring); wrk cycles through them with paths.lua, and the baseline runs
# through the same script with the one path /v1/whoami, so both pay the same
# load-generator cost.
#
# Needs root for apt-get when wrk, openssl, curl or jq are missing. Builds the
# release binary into CARGO_TARGET_DIR (default /var/cache/qledger/target).
# Exit status: 0 when every run completed with only 2xx answers (whether or not
# the targets are met), 1 otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../common.sh
source "$here/../common.sh"

persons=20000
duration=20
connections=16
threads=2
warmup=3
rounds=2
seed=42
also_plain=0
perf_profile=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --persons) persons="${2:?--persons needs a value}"; shift 2 ;;
        --duration) duration="${2:?--duration needs a value}"; shift 2 ;;
        --connections) connections="${2:?--connections needs a value}"; shift 2 ;;
        --threads) threads="${2:?--threads needs a value}"; shift 2 ;;
        --warmup) warmup="${2:?--warmup needs a value}"; shift 2 ;;
        --rounds) rounds="${2:?--rounds needs a value}"; shift 2 ;;
        --seed) seed="${2:?--seed needs a value}"; shift 2 ;;
        --also-plain) also_plain=1; shift ;;
        --perf) perf_profile=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in persons duration connections threads warmup rounds seed; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "--$v must be a whole number, got '${!v}'" >&2; exit 2; }
done
(( connections >= threads && threads >= 1 )) || { echo "need --connections >= --threads >= 1" >&2; exit 2; }
(( rounds >= 1 && duration >= 1 )) || { echo "need --rounds >= 1 and --duration >= 1" >&2; exit 2; }

lua="$here/paths.lua"
jq_paths="$here/paths.jq"
institution=1311234567

# tools, release build, scratch directory (and server lifecycle): ../common.sh
need_tools wrk openssl curl jq
build_release qledger
make_scratch http 5

# --- data -----------------------------------------------------------------------

publish_population
jq -n -r --arg today "$today" -f "$jq_paths" "$work/population.jsonl" >"$work/eligibility.paths"
npaths=$(wc -l <"$work/eligibility.paths")
(( npaths > 0 )) || { echo "no insured numbers extracted" >&2; exit 1; }
echo "/v1/whoami" >"$work/baseline.paths"
echo "$npaths insured numbers with a qualification valid today ($today, Japan)" >&2

# throwaway CA, server certificate, token
make_ca_and_token "$institution"
auth=(-H "Authorization: Bearer $token")

# --- checks before measuring -------------------------------------------------------

# verify_paths: every eligibility path must answer 200 "found" with at least
# one qualification (one curl process, keep-alive); prints one answer in full.
verify_paths() {
    log "checking every eligibility path against $base_url"
    local first
    first="$(head -n1 "$work/eligibility.paths")"
    echo "GET $first" >&2
    curl -s -i "${curl_opts[@]}" "$base_url$first" | tr -d '\r' >&2
    echo >&2
    curl -s -o /dev/null -w 'GET /v1/whoami -> %{http_code}\n' "${curl_opts[@]}" "$base_url/v1/whoami" >&2
    curl -s -o /dev/null -w 'GET /v1/whoami without token -> %{http_code}\n' \
        ${ca_opts[@]+"${ca_opts[@]}"} "$base_url/v1/whoami" >&2 || true
    awk -v b="$base_url" '{ printf "url = \"%s%s\"\n", b, $0 }' "$work/eligibility.paths" >"$work/curl.cfg"
    curl -s "${curl_opts[@]}" -w '\n' -K "$work/curl.cfg" >"$work/answers.jsonl"
    local tally
    tally="$(jq -r 'if .status == "found" and (.qualifications | length) > 0 then "hit"
                    elif .status == "found" then "found-but-no-qualification"
                    else "miss: \(.title // .type // .status)" end' "$work/answers.jsonl" | sort | uniq -c)"
    echo "$tally" | sed 's/^/  /' >&2
    local hits
    hits="$(jq -r 'select(.status == "found" and (.qualifications | length) > 0) | 1' "$work/answers.jsonl" | wc -l)"
    if (( hits != npaths )); then
        echo "only $hits of $npaths paths are hits: the keys are wrong" >&2
        return 1
    fi
    echo "all $npaths paths answer 200 with a qualification" >&2
}

# run_wrk LABEL PATHS_FILE DURATION: prints wrk's report, appends a result line
# "LABEL rps p50_us p99_us non2xx socket_errors" to $work/results.
all_ok=1
run_wrk() {
    local label="$1" paths="$2" secs="$3"
    wrk_run "$work/wrk.out" "$secs" "${auth[@]}" -s "$lua" "$base_url" -- "$paths" || return 1
    if [[ "$label" != warmup* ]]; then
        printf '%s %s %s %s %s %s\n' "$label" "$(wrk_get rps)" "$(wrk_get p50_us)" "$(wrk_get p99_us)" \
            "$(( non2xx > text_non2xx ? non2xx : text_non2xx ))" "$sockerr" >>"$work/results"
    fi
    if (( non2xx > 0 || text_non2xx > 0 || sockerr > 0 )); then
        echo "!! $label: $non2xx non-2xx answers, $sockerr socket errors" >&2
        all_ok=0
    fi
}

# measure MODE: warm-up, then ROUNDS interleaved rounds against the running server
measure() {
    local mode="$1"
    log "[$mode] warm-up, ${warmup} s per route"
    if (( warmup > 0 )); then
        run_wrk "warmup-baseline" "$work/baseline.paths" "$warmup"
        run_wrk "warmup-eligibility" "$work/eligibility.paths" "$warmup"
    fi
    local r
    for r in $(seq "$rounds"); do
        log "[$mode] round $r/$rounds: baseline GET /v1/whoami, ${duration} s"
        run_wrk "$mode:$r:baseline" "$work/baseline.paths" "$duration"
        log "[$mode] round $r/$rounds: eligibility ($npaths insured numbers, cycled), ${duration} s"
        run_wrk "$mode:$r:eligibility" "$work/eligibility.paths" "$duration"
    done
}

: >"$work/results"
log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); wrk $threads threads, $connections connections, ${duration} s per run"

start_server tls "${auth[@]}"
verify_paths
measure tls
if (( perf_profile )); then
    # server CPU time and context switches per request, baseline against eligibility
    for route in baseline eligibility; do
        log "[tls] perf stat of the server during one $route run (${duration} s; not measured)"
        perf stat -x, -e task-clock,context-switches -o "$work/perf-stat.csv" -p "$server_pid" \
            -- sleep "$duration" 2>/dev/null &
        perf_pid=$!
        sleep 0.2
        run_wrk "perf:$route" "$work/$route.paths" "$duration" || true
        wait "$perf_pid" || true
        perf_pid=""
        reqs="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' "$work/wrk.out")"
        awk -F, -v reqs="$reqs" -v route="$route" '
            $3 == "task-clock" { cpu_ms = $1 } $3 == "context-switches" { cs = $1 }
            END { if (reqs > 0) printf "perf stat, %s: %d requests; server CPU %.1f µs and %.2f context switches per request\n",
                                        route, reqs, 1000 * cpu_ms / reqs, cs / reqs }' "$work/perf-stat.csv" |
            tee -a "$work/perf-summary" >&2
    done
    log "[tls] perf profile of the server during one eligibility run (${duration} s; not measured)"
    perf record -F 499 -o "$work/perf.data" -p "$server_pid" -- sleep "$duration" 2>"$work/perf.log" &
    perf_pid=$!
    sleep 0.5
    run_wrk "perf:eligibility" "$work/eligibility.paths" "$duration" || true
    wait "$perf_pid" || true
    perf_pid=""
    sed -i '/^perf:/d' "$work/results"
    if [[ -s "$work/perf.data" ]]; then
        echo "hottest symbols (self time, server process; [k] kernel, [.] user):" >&2
        perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>&1 |
            grep -E '^ +[0-9]+\.[0-9]+%' | head -30 | sed 's/ *- *- *$//' >&2 || true
        echo "by shared object:" >&2
        perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>&1 |
            grep -E '^ +[0-9]+\.[0-9]+%' | head -10 | sed 's/ *- *- *$//' >&2 || true
    else
        echo "perf recorded nothing:" >&2
        cat "$work/perf.log" >&2
    fi
fi
stop_server

if (( also_plain )); then
    start_server plain "${auth[@]}"
    verify_paths
    measure plain
    stop_server
fi

# --- summary ---------------------------------------------------------------------

summary() {
    awk -v ratio_target=60 -v p99_target=5000 '
    function ms(us) { return sprintf("%.2f", us / 1000) }
    {
        split($1, k, ":"); mode = k[1]; round = k[2]; route = k[3]
        rps[mode, round, route] = $2; p50[mode, round, route] = $3; p99[mode, round, route] = $4
        bad[mode, round, route] = $5 "/" $6
        if (!(mode in seen)) { seen[mode] = 1; modes[++nmodes] = mode }
        if (round > nrounds[mode]) nrounds[mode] = round
    }
    END {
        printf "\n%-6s %-5s | %10s %8s %8s | %10s %8s %8s | %7s | %s\n", "mode", "round",
            "base req/s", "p50 ms", "p99 ms", "elig req/s", "p50 ms", "p99 ms", "ratio", "non-2xx/sock.err (elig)"
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]; sum = 0; worst = 0
            for (r = 1; r <= nrounds[mode]; r++) {
                b = rps[mode, r, "baseline"]; e = rps[mode, r, "eligibility"]
                ratio = (b > 0) ? 100 * e / b : 0; sum += ratio
                if (p99[mode, r, "eligibility"] > worst) worst = p99[mode, r, "eligibility"]
                printf "%-6s %-5s | %10.0f %8s %8s | %10.0f %8s %8s | %6.1f%% | %s\n", mode, r,
                    b, ms(p50[mode, r, "baseline"]), ms(p99[mode, r, "baseline"]),
                    e, ms(p50[mode, r, "eligibility"]), ms(p99[mode, r, "eligibility"]),
                    ratio, bad[mode, r, "eligibility"]
                be[mode] += b; ee[mode] += e
            }
            mean[mode] = sum / nrounds[mode]; worstp99[mode] = worst
        }
        print ""
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            label = (mode == "tls") ? "TLS + token auth" : "plain HTTP, no auth"
            printf "%s: eligibility / baseline, mean over %d rounds: %.1f%% (target >= %d%%: %s); " \
                   "worst eligibility p99 %s ms (target < %s ms: %s)\n", label, nrounds[mode], mean[mode],
                ratio_target, (mean[mode] >= ratio_target) ? "met" : "MISSED",
                ms(worstp99[mode]), ms(p99_target), (worstp99[mode] < p99_target) ? "met" : "MISSED"
        }
        if (("tls" in seen) && ("plain" in seen)) {
            n = nrounds["tls"]; np = nrounds["plain"]
            printf "TLS + auth vs plain, mean req/s: baseline %.0f vs %.0f (%.1f%%), eligibility %.0f vs %.0f (%.1f%%)\n",
                be["tls"] / n, be["plain"] / np, 100 * (be["tls"] / n) / (be["plain"] / np),
                ee["tls"] / n, ee["plain"] / np, 100 * (ee["tls"] / n) / (ee["plain"] / np)
        }
    }' "$work/results"
}

log "summary: $persons persons ($events events, $npaths insured numbers queried), wrk $threads threads / $connections connections / ${duration} s per run, $rounds rounds, $(nproc) cores"
summary
[[ -s "$work/perf-summary" ]] && cat "$work/perf-summary"
echo "total time $((SECONDS - started)) s (after the build)"
if (( ! all_ok )); then
    echo "some runs had non-2xx answers or socket errors: the figures are not valid" >&2
    exit 1
fi
