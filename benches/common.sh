# Shared pieces of the benchmark scripts benches/http/run.sh and
# benches/interfaces/run.sh. Sourced by them (after `set -euo pipefail`), not
# run:
#
#   here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
#   source "$here/../common.sh"
#
# Sourcing only sets root (the workspace, whatever the caller's working
# directory) and defines the functions below; each script calls them in its
# own order. They read the caller's option variables (perf_profile, persons,
# seed, threads, connections) and set plain global variables, which the
# scripts then use:
#
#   usage                     the calling script's header comment, up to its
#                             `set -euo pipefail` line
#   log MESSAGE...            a "== MESSAGE" line on standard error
#   need_tools COMMAND...     apt-get install the missing ones (package name =
#                             command name); with perf_profile=1, exit 2 when
#                             perf is missing
#   build_release PACKAGE...  cargo build --release -p PACKAGE into
#                             CARGO_TARGET_DIR (exported; default
#                             /var/cache/qledger/target); sets bin (qledger)
#   make_scratch NAME SECS    work: a fresh scratch directory, removed on exit
#                             with the server (and perf_pid, when set) stopped;
#                             SECS: how long stop_server waits for the server
#                             to stop before killing it
#   stop_server, free_port    stop the running server; print a free local port
#   start_server MODE [CURL_OPTION...]
#                             serve $work/data on a free port, MODE tls (the
#                             throwaway certificate) or plain (--plain-http
#                             --no-auth), and wait for /readyz; sets
#                             server_pid, base_url, ca_opts and curl_opts
#                             (ca_opts then the CURL_OPTIONs)
#   publish_population        generate --persons persons (--seed) into
#                             $work/population.jsonl and publish them into
#                             $work/data; sets started, events, today (Japan)
#   make_ca_and_token INSTITUTION
#                             a throwaway CA and a certificate for 127.0.0.1
#                             in $work; sets token (role institution)
#   wrk_run OUT SECS WRK_ARGUMENT...
#                             wrk -t$threads -c$connections -dSECSs --latency
#                             --timeout 10s WRK_ARGUMENT... into OUT, shown
#                             indented but for the Lua script's BENCH line;
#                             sets non2xx (the Lua script's count),
#                             text_non2xx (wrk's own, 0 when absent) and
#                             sockerr; returns 1 when wrk fails (call it as
#                             `wrk_run ... || return 1`)
#   wrk_get KEY               the number KEY=... of that BENCH line

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "${BASH_SOURCE[0]} is sourced by the benchmark scripts, not run" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

log() { printf '\n== %s\n' "$*" >&2; }

# --- tools --------------------------------------------------------------------

need_tools() {
    local need_pkgs=() tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || need_pkgs+=("$tool")
    done
    if (( perf_profile )) && ! command -v perf >/dev/null; then
        echo "--perf: perf is not installed (apt-get install linux-perf)" >&2
        exit 2
    fi
    if (( ${#need_pkgs[@]} )); then
        log "installing ${need_pkgs[*]}"
        apt-get install -y "${need_pkgs[@]}" >/dev/null ||
            { apt-get update >/dev/null && apt-get install -y "${need_pkgs[@]}" >/dev/null; }
    fi
}

# --- build --------------------------------------------------------------------

build_release() {
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/qledger/target}"
    local names="$1" package
    for package in "${@:2}"; do names+=" and $package"; done
    log "building $names (release) into $CARGO_TARGET_DIR"
    (
        cd "$root" || exit
        for package in "$@"; do
            cargo build --release -p "$package" || exit
        done
    )
    bin="$CARGO_TARGET_DIR/release/qledger"
}

# --- scratch directory, server lifecycle ----------------------------------------

make_scratch() {
    work="$(mktemp -d "${TMPDIR:-/tmp}/qledger-$1-bench.XXXXXX")"
    server_stop_secs="$2"
    server_pid=""
    perf_pid=""
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq $((server_stop_secs * 10))); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
cleanup() {
    [[ -n "$perf_pid" ]] && kill -INT "$perf_pid" 2>/dev/null || true
    stop_server
    rm -rf "$work"
}

free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

start_server() {
    local mode="$1" port
    shift
    port="$(free_port)"
    if [[ "$mode" == tls ]]; then
        base_url="https://127.0.0.1:$port"
        ca_opts=(--cacert "$work/ca.pem")
        RUST_LOG=warn "$bin" serve --data "$work/data" --listen "127.0.0.1:$port" \
            --tls-cert "$work/server.pem" --tls-key "$work/server.key" \
            >"$work/server-$mode.log" 2>&1 &
    else
        base_url="http://127.0.0.1:$port"
        ca_opts=()
        RUST_LOG=warn "$bin" serve --data "$work/data" --listen "127.0.0.1:$port" \
            --plain-http --no-auth \
            >"$work/server-$mode.log" 2>&1 &
    fi
    server_pid=$!
    curl_opts=(${ca_opts[@]+"${ca_opts[@]}"} "$@")
    local code=""
    for _ in $(seq 600); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "server exited:" >&2
            cat "$work/server-$mode.log" >&2
            server_pid=""
            return 1
        fi
        code="$(curl -s -o /dev/null -w '%{http_code}' ${curl_opts[@]+"${curl_opts[@]}"} "$base_url/readyz" || true)"
        [[ "$code" == 200 ]] && break
        sleep 0.2
    done
    [[ "$code" == 200 ]] || { echo "server not ready after 120 s (last /readyz: $code)" >&2; return 1; }
    echo "server ($mode) ready at $base_url, pid $server_pid" >&2
}

# --- data -----------------------------------------------------------------------

publish_population() {
    started=$SECONDS
    log "generating $persons persons (seed $seed) and publishing them"
    "$bin" generate --seed "$seed" --persons "$persons" --out "$work/population.jsonl"
    events=$(wc -l <"$work/population.jsonl")
    local t0=$SECONDS
    RUST_LOG=warn "$bin" publish "$work/population.jsonl" --data "$work/data" >&2
    echo "$events events published in $((SECONDS - t0)) s" >&2
    today="$(TZ=Asia/Tokyo date +%F)"
}

# --- throwaway CA, server certificate, token -----------------------------------

make_ca_and_token() {
    local institution="$1"
    log "making a throwaway CA and a certificate for 127.0.0.1; issuing a token"
    (
        cd "$work"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj "/CN=qledger bench CA" -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
        printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile server.ext -out server.pem 2>/dev/null
    )
    token="$(RUST_LOG=warn "$bin" tokens issue --data "$work/data" --name bench-clinic \
        --role institution --institution "$institution" --quiet)"
    [[ "$token" == qlt_* ]] || { echo "unexpected token output: $token" >&2; exit 1; }
}

# --- wrk --------------------------------------------------------------------------

wrk_run() {
    local out="$1" secs="$2"
    shift 2
    wrk -t"$threads" -c"$connections" -d"${secs}s" --latency --timeout 10s "$@" >"$out" 2>&1 || {
        cat "$out" >&2
        echo "wrk failed" >&2
        return 1
    }
    wrk_bench="$(grep '^BENCH ' "$out")" || { echo "no BENCH line in wrk's output" >&2; return 1; }
    grep -v '^BENCH ' "$out" | sed 's/^/    /' >&2
    non2xx="$(wrk_get non2xx)"
    text_non2xx="$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")"
    text_non2xx="${text_non2xx:-0}"
    sockerr=$(( $(wrk_get connect_errors) + $(wrk_get read_errors) + $(wrk_get write_errors) + $(wrk_get timeouts) ))
}

wrk_get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$wrk_bench"; }
