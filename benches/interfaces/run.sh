#!/usr/bin/env bash
# The interfaces beside the library (issue 7), in one run on the same data:
#
#   A. batch check throughput, pairs per second, each beside the library's own
#      lookup rate measured in the same round (the baseline):
#        library   qledger-bench lookups: Views::eligibility straight on the
#                  views (opened read-only), one thread, pairs parsed first
#        cli       qledger check-batch PAIRS --data DIR > /dev/null
#        http      qledger check-batch PAIRS --server http://… (serve
#                  --plain-http --no-auth)
#        https     the same over TLS with a token (QLEDGER_TOKEN,
#                  QLEDGER_CA_CERT), against the same data served with TLS
#   B. the online check's XML over HTTP beside the JSON endpoint, under wrk
#      against the same plain server: POST /v1/onlinecheck with one XML
#      request per person (application/xml) against
#      GET /v1/eligibility?insurer=…&symbol=…&number=…&branch=…&on=… for the
#      same persons; requests per second (ratio XML / JSON), p50 and p99.
#
#   benches/interfaces/run.sh [--persons N] [--pairs N] [--batch-rounds R]
#                             [--duration S] [--rounds R] [--warmup S]
#                             [--connections C] [--threads T] [--seed S]
#                             [--no-tls] [--perf]
#
# Defaults: 20,000 persons, 100,000 pairs (cycling through every insured
# number with a qualification valid today, in Japan), 3 batch rounds,
# 2 wrk rounds of 15 s per route after a 3 s warm-up each, wrk 2 threads /
# 16 connections; about 5 minutes after the build on 2 cores.
#
# The machine is shared and noisy, so every figure is reported with the
# baseline of its own round: batch rounds run library, cli, http (then, with
# the TLS server, library, https), and wrk rounds alternate JSON, XML, JSON,
# XML. Batch times are wall-clock around the whole command (process start,
# opening the views, reading the file, writing the answers to /dev/null);
# the library's time is the lookups' only (its parse rate and its rate with
# the batch's answer line made are printed beside it, for reading the gap).
#
# Before measuring: every batch answer of the cli and the http (and https)
# runs is checked to be "found" with a qualification; every JSON path to
# answer 200 found; a sample of the XML bodies to answer 200 with
# <QualificationValidity>1</QualificationValidity> (5, 複数該当, where the
# person holds two qualifications today, as the JSON answer shows), and the
# XML warm-up reads every answer and counts the others.
#
# --no-tls  skips the https batch rounds (and the throwaway CA and token).
# --perf    after the measured runs (not measured themselves): a perf profile
#           of the server during one XML run and during one http batch, and
#           of one cli batch; the hottest symbols of each.
#
# Needs wrk, jq, curl, openssl (apt-get when missing, as root). Builds the
# release binaries qledger and qledger-bench into CARGO_TARGET_DIR (default
# /var/cache/qledger/target). Exit status: 0 when every run completed with
# only the expected answers (whatever the ratios), 1 otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../common.sh
source "$here/../common.sh"

persons=20000
pairs=100000
batch_rounds=3
duration=15
rounds=2
warmup=3
connections=16
threads=2
seed=42
tls=1
perf_profile=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --persons) persons="${2:?--persons needs a value}"; shift 2 ;;
        --pairs) pairs="${2:?--pairs needs a value}"; shift 2 ;;
        --batch-rounds) batch_rounds="${2:?--batch-rounds needs a value}"; shift 2 ;;
        --duration) duration="${2:?--duration needs a value}"; shift 2 ;;
        --rounds) rounds="${2:?--rounds needs a value}"; shift 2 ;;
        --warmup) warmup="${2:?--warmup needs a value}"; shift 2 ;;
        --connections) connections="${2:?--connections needs a value}"; shift 2 ;;
        --threads) threads="${2:?--threads needs a value}"; shift 2 ;;
        --seed) seed="${2:?--seed needs a value}"; shift 2 ;;
        --no-tls) tls=0; shift ;;
        --perf) perf_profile=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in persons pairs batch_rounds duration rounds warmup connections threads seed; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "--${v//_/-} must be a whole number, got '${!v}'" >&2; exit 2; }
done
(( persons >= 1 && pairs >= 1 )) || { echo "need --persons >= 1 and --pairs >= 1" >&2; exit 2; }
(( connections >= threads && threads >= 1 )) || { echo "need --connections >= --threads >= 1" >&2; exit 2; }
(( rounds >= 1 && batch_rounds >= 1 && duration >= 1 )) ||
    { echo "need --rounds >= 1, --batch-rounds >= 1 and --duration >= 1" >&2; exit 2; }

lua="$here/requests.lua"
holders_jq="$here/holders.jq"
institution=1311234567

now() { echo "$EPOCHREALTIME"; }

# tools, release build, scratch directory (and server lifecycle): ../common.sh
tools=(wrk curl jq)
if (( tls )); then tools+=(openssl); fi
need_tools "${tools[@]}"
build_release qledger qledger-bench
bench_bin="$CARGO_TARGET_DIR/release/qledger-bench"
make_scratch interfaces 10
client_env=()

# --- data -----------------------------------------------------------------------

publish_population
jq -n -c --arg today "$today" -f "$holders_jq" "$work/population.jsonl" >"$work/holders.jsonl"
nholders=$(wc -l <"$work/holders.jsonl")
(( nholders > 0 )) || { echo "no insured numbers extracted" >&2; exit 1; }
echo "$nholders insured numbers with a qualification valid today ($today, Japan)" >&2

# The batch's pairs: --pairs lines cycling through the holders, in order.
jq -s -c --argjson n "$pairs" --arg on "$today" '
    . as $h | length as $m
    | range($n) | $h[. % $m]
    | {insurer, symbol, number, branch, on: $on} | with_entries(select(.value != ""))' \
    "$work/holders.jsonl" >"$work/pairs.jsonl"
echo "$pairs pairs, $(wc -c <"$work/pairs.jsonl") bytes; first: $(head -n1 "$work/pairs.jsonl")" >&2

# The JSON endpoint's paths and the XML requests, one per holder, same order.
jq -r --arg on "$today" '
    "/v1/eligibility?insurer=\(.insurer | @uri)"
    + (if .symbol != "" then "&symbol=\(.symbol | @uri)" else "" end)
    + "&number=\(.number | @uri)"
    + (if .branch != "" then "&branch=\(.branch | @uri)" else "" end)
    + "&on=\($on)"' "$work/holders.jsonl" >"$work/json.paths"
jq -r --arg day "${today//-/}" --arg inst "$institution" '
    def x: gsub("&"; "&amp;") | gsub("<"; "&lt;") | gsub(">"; "&gt;");
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>"
    + "<XmlMsg><MessageHeader><QualificationConfirmationDate>\($day)</QualificationConfirmationDate>"
    + "<MedicalInstitutionCode>\($inst)</MedicalInstitutionCode></MessageHeader>"
    + "<MessageBody><QualificationConfirmSearchInfo><InsurerNumber>\(.insurer | x)</InsurerNumber>"
    + (if .symbol != "" then "<InsuredCardSymbol>\(.symbol | x)</InsuredCardSymbol>" else "" end)
    + "<InsuredIdentificationNumber>\(.number | x)</InsuredIdentificationNumber>"
    + (if .branch != "" then "<InsuredBranchNumber>\(.branch | x)</InsuredBranchNumber>" else "" end)
    + "<Birthdate>\(.birth_date | gsub("-"; ""))</Birthdate>"
    + "<LimitApplicationCertificateRelatedConsFlg>1</LimitApplicationCertificateRelatedConsFlg>"
    + "</QualificationConfirmSearchInfo></MessageBody></XmlMsg>"' \
    "$work/holders.jsonl" >"$work/xml.bodies"

# --- throwaway CA, server certificate, token (before any server locks the data) -

if (( tls )); then
    make_ca_and_token "$institution"
fi

# --- checks -----------------------------------------------------------------------

all_ok=1

# check_batch_answers FILE LABEL: every answer found with a qualification, in order.
check_batch_answers() {
    local file="$1" label="$2" tally lines hits
    tally="$(jq -r 'if .status == "found" and (.qualifications | length) > 0 then "found, qualified"
                    elif .status == "found" then "found, no qualification"
                    elif .status == "error" then "error: \(.error.field // "") \(.error.rule // "")"
                    else .status end' "$file" | sort | uniq -c)"
    echo "$label answers:" >&2
    echo "$tally" | sed 's/^/  /' >&2
    lines="$(wc -l <"$file")"
    hits="$(jq -r 'select(.status == "found" and (.qualifications | length) > 0) | .line' "$file" |
        awk '$1 == NR { n++ } END { print n + 0 }')"
    if (( lines != pairs || hits != pairs )); then
        echo "!! $label: $lines answers, $hits found with a qualification in order, of $pairs pairs" >&2
        all_ok=0
        return 1
    fi
}

verify_json_paths() {
    log "checking every JSON path against $base_url"
    echo "GET $(head -n1 "$work/json.paths")" >&2
    curl -s -i ${curl_opts[@]+"${curl_opts[@]}"} "$base_url$(head -n1 "$work/json.paths")" | tr -d '\r' >&2
    echo >&2
    awk -v b="$base_url" '{ printf "url = \"%s%s\"\n", b, $0 }' "$work/json.paths" >"$work/curl.cfg"
    curl -s ${curl_opts[@]+"${curl_opts[@]}"} -w '\n' -K "$work/curl.cfg" >"$work/json-answers.jsonl"
    local hits
    hits="$(jq -r 'select(.status == "found" and (.qualifications | length) > 0) | 1' \
        "$work/json-answers.jsonl" | wc -l)"
    echo "$hits of $nholders JSON paths answer found with a qualification" >&2
    (( hits == nholders )) || { echo "!! JSON paths: $((nholders - hits)) misses" >&2; all_ok=0; }
}

# verify_xml_sample: a sample of the XML requests (every STEPth) must answer
# 200 with QualificationValidity 1, or 5 (複数該当) where the JSON answer for
# the same person (verify_json_paths, same order) holds two qualifications.
verify_xml_sample() {
    local step=$(( nholders > 200 ? nholders / 200 : 1 ))
    log "checking every ${step}th XML request against $base_url/v1/onlinecheck"
    local first
    first="$(head -n1 "$work/xml.bodies")"
    echo "POST /v1/onlinecheck" >&2
    echo "$first" >&2
    curl -s -i ${curl_opts[@]+"${curl_opts[@]}"} -H 'Content-Type: application/xml' \
        --data-binary "$first" "$base_url/v1/onlinecheck" | tr -d '\r' >&2
    echo >&2
    local wrong
    wrong="$(sed 's|<Birthdate>[0-9]*</Birthdate>|<Birthdate>19000101</Birthdate>|' <<<"$first")"
    curl -s -o "$work/xml-wrong.out" -w 'the same with a wrong birth date: HTTP %{http_code}, ' \
        ${curl_opts[@]+"${curl_opts[@]}"} -H 'Content-Type: application/xml' \
        --data-binary "$wrong" "$base_url/v1/onlinecheck" >&2
    echo "$(grep -o '<QualificationValidity>[^<]*</QualificationValidity>' "$work/xml-wrong.out" ||
        echo 'no QualificationValidity')" >&2
    jq -r '.qualifications | length' "$work/json-answers.jsonl" >"$work/json-qualifications"
    local n=0 asked=0 good=0 shown=0 code body held validity
    : >"$work/xml-sample.tally"
    while IFS=$'\t' read -r held body; do
        n=$((n + 1))
        (( (n - 1) % step == 0 )) || continue
        asked=$((asked + 1))
        code="$(curl -s -o "$work/xml.out" -w '%{http_code}' ${curl_opts[@]+"${curl_opts[@]}"} \
            -H 'Content-Type: application/xml' --data-binary "$body" "$base_url/v1/onlinecheck")"
        validity="$(grep -o '<QualificationValidity>[^<]*</QualificationValidity>' "$work/xml.out" |
            sed 's/<[^>]*>//g' || true)"
        echo "HTTP $code, QualificationValidity ${validity:-none}, JSON qualifications $held" >>"$work/xml-sample.tally"
        if [[ "$code" == 200 && ( ( "$validity" == 1 && "$held" == 1 ) || ( "$validity" == 5 && "$held" -ge 2 ) ) ]]; then
            good=$((good + 1))
        elif (( ++shown <= 3 )); then
            echo "unexpected: HTTP $code for $body" >&2
            head -c 1500 "$work/xml.out" >&2
            echo >&2
        fi
    done < <(paste "$work/json-qualifications" "$work/xml.bodies")
    sort "$work/xml-sample.tally" | uniq -c | sed 's/^/  /' >&2
    echo "$good of $asked XML requests answer 200 with QualificationValidity 1 (5 for the" \
        "persons with two qualifications valid today, duplicate enrolment)" >&2
    (( good == asked )) || { echo "!! XML sample: $((asked - good)) other answers" >&2; all_ok=0; }
    echo "persons with two or more qualifications valid today: $(grep -cv '^1$' "$work/json-qualifications" || true) of $nholders" >&2
}

# --- measurements -------------------------------------------------------------------

: >"$work/results"

# run_library ROUND MODE: the library's lookups on the same pairs.
run_library() {
    local round="$1" mode="$2" line
    "$bench_bin" lookups "$work/pairs.jsonl" --data "$work/data" >"$work/lookups.out" 2>"$work/lookups.err" || {
        cat "$work/lookups.err" >&2
        echo "qledger-bench lookups failed" >&2
        return 1
    }
    sed 's/^/    /' "$work/lookups.err" >&2
    line="$(grep '^LOOKUPS ' "$work/lookups.out")"
    get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    printf 'batch %s %s library %s %s %s %s\n' "$mode" "$round" "$(get rate)" "$(get secs)" \
        "$(get parse_rate)" "$(get shape_rate)" >>"$work/results"
    if [[ "$(get qualified)" != "$pairs" ]]; then
        echo "!! library: only $(get qualified) of $pairs lookups found a qualification" >&2
        all_ok=0
    fi
}

# run_batch ROUND MODE KIND: one check-batch, timed around the whole command.
run_batch() {
    local round="$1" mode="$2" kind="$3" t_start t_end target
    if [[ "$kind" == cli ]]; then target=(--data "$work/data"); else target=(--server "$base_url"); fi
    t_start="$(now)"
    env ${client_env[@]+"${client_env[@]}"} RUST_LOG=warn \
        "$bin" check-batch "$work/pairs.jsonl" "${target[@]}" >/dev/null 2>"$work/batch.err" || {
        cat "$work/batch.err" >&2
        echo "!! check-batch ($kind) failed" >&2
        all_ok=0
        return 1
    }
    t_end="$(now)"
    awk -v a="$t_start" -v b="$t_end" -v n="$pairs" -v k="$kind" -v r="$round" -v m="$mode" \
        'BEGIN { s = b - a; printf "batch %s %s %s %.1f %.6f\n", m, r, k, n / s, s }' >>"$work/results"
    awk -v a="$t_start" -v b="$t_end" -v n="$pairs" -v k="$kind" \
        'BEGIN { s = b - a; printf "    %s: %d pairs in %.3f s, %.0f pairs/s\n", k, n, s, n / s }' >&2
}

# run_wrk LABEL FILE KIND SECONDS [check]: appends "wrk LABEL rps p50 p99 non2xx sockerr"
run_wrk() {
    local label="$1" file="$2" kind="$3" secs="$4" check="${5:-}"
    wrk_run "$work/wrk.out" "$secs" -s "$lua" "$base_url" -- "$file" "$kind" $check || return 1
    (( text_non2xx > non2xx )) && non2xx="$text_non2xx"
    if [[ -n "$check" ]]; then
        echo "    answers read: $(wrk_get good) QualificationValidity 1, $(wrk_get multiple) 5 (duplicate" \
            "enrolment), $(wrk_get bad) other" >&2
        (( $(wrk_get bad) == 0 )) || all_ok=0
    fi
    if [[ "$label" != warmup* && "$label" != perf* ]]; then
        printf 'wrk %s %s %s %s %s %s\n' "$label" "$(wrk_get rps)" "$(wrk_get p50_us)" "$(wrk_get p99_us)" \
            "$non2xx" "$sockerr" >>"$work/results"
    fi
    if (( non2xx > 0 || sockerr > 0 )); then
        echo "!! $label: $non2xx non-2xx answers, $sockerr socket errors" >&2
        all_ok=0
    fi
}

# perf_top FILE TITLE: the hottest symbols of a perf recording.
perf_top() {
    if [[ -s "$1" ]]; then
        echo "$2: hottest symbols (self time; [k] kernel, [.] user):" >&2
        perf report -i "$1" --no-children --sort symbol --stdio 2>/dev/null |
            grep -E '^ +[0-9]+\.[0-9]+%' | head -25 | sed 's/ *- *- *$//' | tee -a "$work/perf-summary" >&2 || true
    else
        echo "$2: perf recorded nothing" >&2
    fi
}

log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

start_server plain
log "checking the batch answers (cli, then http) before measuring"
"$bin" check-batch "$work/pairs.jsonl" --data "$work/data" >"$work/cli-answers.jsonl" 2>"$work/batch.err" ||
    { cat "$work/batch.err" >&2; exit 1; }
check_batch_answers "$work/cli-answers.jsonl" "cli --data" || true
"$bin" check-batch "$work/pairs.jsonl" --server "$base_url" >"$work/http-answers.jsonl" 2>"$work/batch.err" ||
    { cat "$work/batch.err" >&2; exit 1; }
check_batch_answers "$work/http-answers.jsonl" "http --server" || true
if ! cmp -s "$work/cli-answers.jsonl" "$work/http-answers.jsonl"; then
    echo "note: the cli and http answers differ in bytes; first difference:" >&2
    diff <(head -n 1000 "$work/cli-answers.jsonl") <(head -n 1000 "$work/http-answers.jsonl") | head -4 >&2 || true
fi
rm -f "$work/cli-answers.jsonl" "$work/http-answers.jsonl"
verify_json_paths
verify_xml_sample

for r in $(seq "$batch_rounds"); do
    log "[plain] batch round $r/$batch_rounds: library, cli, http ($pairs pairs)"
    run_library "$r" plain
    run_batch "$r" plain cli
    run_batch "$r" plain http
done

log "[plain] wrk warm-up, ${warmup} s per route (the XML answers read and checked)"
if (( warmup > 0 )); then
    run_wrk warmup-json "$work/json.paths" get "$warmup"
    run_wrk warmup-xml "$work/xml.bodies" xml "$warmup" check
fi
for r in $(seq "$rounds"); do
    log "[plain] wrk round $r/$rounds: JSON GET /v1/eligibility ($nholders persons, cycled), ${duration} s"
    run_wrk "json $r" "$work/json.paths" get "$duration"
    log "[plain] wrk round $r/$rounds: XML POST /v1/onlinecheck ($nholders persons, cycled), ${duration} s"
    run_wrk "xml $r" "$work/xml.bodies" xml "$duration"
done

if (( perf_profile )); then
    log "[plain] perf profile of the server during one XML run (${duration} s; not measured)"
    perf record -F 499 -g -o "$work/perf-xml.data" -p "$server_pid" -- sleep "$duration" 2>"$work/perf.log" &
    perf_pid=$!
    sleep 0.5
    run_wrk perf-xml "$work/xml.bodies" xml "$duration" || true
    wait "$perf_pid" || true
    perf_pid=""
    perf_top "$work/perf-xml.data" "server, XML POST /v1/onlinecheck"
    log "[plain] perf profile of the server during one http batch (not measured)"
    perf record -F 499 -g -o "$work/perf-http.data" -p "$server_pid" 2>"$work/perf.log" &
    perf_pid=$!
    sleep 0.5
    "$bin" check-batch "$work/pairs.jsonl" --server "$base_url" >/dev/null
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" || true
    perf_pid=""
    perf_top "$work/perf-http.data" "server, http batch"
    log "perf profile of one cli batch (not measured)"
    perf record -F 499 -g -o "$work/perf-cli.data" -- \
        "$bin" check-batch "$work/pairs.jsonl" --data "$work/data" >/dev/null 2>"$work/perf.log" || true
    perf_top "$work/perf-cli.data" "cli batch"
fi
stop_server

if (( tls )); then
    client_env=(QLEDGER_TOKEN="$token" QLEDGER_CA_CERT="$work/ca.pem")
    start_server tls -H "Authorization: Bearer $token"
    log "checking the https batch answers before measuring"
    env "${client_env[@]}" "$bin" check-batch "$work/pairs.jsonl" --server "$base_url" \
        >"$work/https-answers.jsonl" 2>"$work/batch.err" || { cat "$work/batch.err" >&2; exit 1; }
    check_batch_answers "$work/https-answers.jsonl" "https --server (token)" || true
    rm -f "$work/https-answers.jsonl"
    for r in $(seq "$batch_rounds"); do
        log "[tls] batch round $r/$batch_rounds: library, https ($pairs pairs)"
        run_library "$r" tls
        run_batch "$r" tls https
    done
    stop_server
fi

# --- summary ---------------------------------------------------------------------

log "summary: $persons persons ($events events, $nholders insured numbers valid today), $pairs pairs per batch, $(nproc) cores, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v pairs="$pairs" '
function pct(a, b) { return (b > 0) ? sprintf("%5.1f%%", 100 * a / b) : "    -" }
$1 == "batch" {
    mode = $2; r = $3; kind = $4
    rate[mode, r, kind] = $5
    if (kind == "library") { parse[mode, r] = $7; shape[mode, r] = $8 }
    if (r > nb[mode]) nb[mode] = r
}
$1 == "wrk" {
    kind = $2; r = $3
    rps[kind, r] = $4; p50[kind, r] = $5; p99[kind, r] = $6; bad[kind, r] = $7 "/" $8
    if (r > nw) nw = r
}
END {
    print "\nA. batch check, pairs/s (ratio: against the library lookups of the same round)"
    printf "%-5s %-5s | %12s | %12s %7s | %12s %7s | %12s %12s\n", "mode", "round", "library/s",
        "cli/s", "ratio", "http(s)/s", "ratio", "lib parse/s", "lib +line/s"
    for (mi = 1; mi <= 2; mi++) {
        mode = (mi == 1) ? "plain" : "tls"
        for (r = 1; r <= nb[mode]; r++) {
            lib = rate[mode, r, "library"]
            cli = rate[mode, r, "cli"]
            net = (mode == "plain") ? rate[mode, r, "http"] : rate[mode, r, "https"]
            printf "%-5s %-5s | %12.0f | %12s %7s | %12.0f %7s | %12.0f %12.0f\n", mode, r, lib,
                (cli != "") ? sprintf("%.0f", cli) : "-", (cli != "") ? pct(cli, lib) : "    -",
                net, pct(net, lib), parse[mode, r], shape[mode, r]
            if (cli != "") { sc[mode] += cli / lib }
            sn[mode] += net / lib
        }
    }
    print ""
    if (nb["plain"] > 0)
        printf "mean over %d rounds: cli %.1f%% and http (plain, no auth) %.1f%% of the library lookup rate\n",
            nb["plain"], 100 * sc["plain"] / nb["plain"], 100 * sn["plain"] / nb["plain"]
    if (nb["tls"] > 0)
        printf "mean over %d rounds: https (TLS + token) %.1f%% of the library lookup rate\n",
            nb["tls"], 100 * sn["tls"] / nb["tls"]
    print "\nB. XML POST /v1/onlinecheck against JSON GET /v1/eligibility (plain HTTP, no auth)"
    printf "%-5s | %10s %8s %8s | %10s %8s %8s | %7s | %s\n", "round", "JSON req/s", "p50 ms",
        "p99 ms", "XML req/s", "p50 ms", "p99 ms", "ratio", "non-2xx/sock.err JSON, XML"
    for (r = 1; r <= nw; r++) {
        printf "%-5s | %10.0f %8.2f %8.2f | %10.0f %8.2f %8.2f | %7s | %s, %s\n", r,
            rps["json", r], p50["json", r] / 1000, p99["json", r] / 1000,
            rps["xml", r], p50["xml", r] / 1000, p99["xml", r] / 1000,
            pct(rps["xml", r], rps["json", r]), bad["json", r], bad["xml", r]
        sx += rps["xml", r] / rps["json", r]
    }
    if (nw > 0) printf "\nmean over %d rounds: XML %.1f%% of JSON requests per second\n", nw, 100 * sx / nw
}' "$work/results"
[[ -s "$work/perf-summary" ]] && echo "(perf profiles above, on standard error)"
echo "total time $((SECONDS - started)) s (after the build)"
if (( ! all_ok )); then
    echo "some checks failed, or runs had unexpected answers or errors: the figures are not valid" >&2
    exit 1
fi
