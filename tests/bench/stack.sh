# tests/bench/stack.sh — what the benchmark scripts share, sourced by run, run-jobs,
# run-auth and run-flood: a temporary ADMINBUS_HOME, a private MariaDB (or
# $ADMINBUS_TEST_DSN), the broker and engine on free loopback ports, and a clean-up that
# stops exactly the processes started here (by pid). Each script sets BENCH_NAME before
# sourcing it.
#
# After bench_home, bench_databases, bench_configure and bench_start_bus the script has:
#   ADMINBUS_HOME LOG   the temporary home and its log folder
#   BASE_DSN            the server; DSN_OF[db] the DSN of each of its databases
#   P_CMD P_EVT, and EXTRA_PORTS (more free ports when asked for); the internal endpoints
#                       are the defaults, ipc:// sockets in the home
#   FLAGS               the flags every adminbus process gets
#   ADMINBUS_AUTHKEY    the site admin key from `adminbus-engine --init` (exported)
#   PIDS                what was started, stopped in reverse order at exit

die() {
    echo "tests/bench/$BENCH_NAME: $*" >&2
    exit 1
}

# bench_bin TARGET… — BIN: $ADMINBUS_BUILD/bin, or a Release build in build-bench/.
bench_bin() {
    if [ -n "${ADMINBUS_BUILD:-}" ]; then
        BIN="$(cd "$ADMINBUS_BUILD" && pwd)/bin"
    else
        echo "== building (Release) in build-bench/" >&2
        cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$ROOT/build-bench" -j "$(nproc)" --target "$@" >/dev/null
        BIN="$ROOT/build-bench/bin"
    fi
    local b
    for b in "$@"; do
        [ -x "$BIN/$b" ] || die "$BIN/$b is missing"
    done
}

stop_pid() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "tests/bench/$BENCH_NAME: pid $pid did not stop in 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local rc=$? i db f
    trap - EXIT INT TERM
    [ -z "$BENCH_PID" ] || stop_pid "$BENCH_PID"
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}"
    done
    if [ "$OWN_DB" = 1 ]; then
        "$ROOT/ops/db" stop || true
    elif [ -f "$SQL_CNF" ]; then
        for db in "${!DSN_OF[@]}"; do
            sql -e "DROP DATABASE IF EXISTS \`$db\`" || true
        done
    fi
    if [ "$rc" -ne 0 ]; then
        for f in "$LOG"/*.log; do
            [ -s "$f" ] && { echo "--- last lines of $f" >&2; tail -n 20 "$f" >&2; }
        done
    fi
    if [ "${ADMINBUS_BENCH_KEEP:-0}" = 1 ]; then
        echo "tests/bench/$BENCH_NAME: kept $ADMINBUS_HOME" >&2
    else
        rm -rf "$ADMINBUS_HOME"
    fi
    exit "$rc"
}

# bench_home — a fresh temporary home, with a short path under /tmp so the private
# server's socket fits in sun_path; the clean-up runs at exit and on INT/TERM.
bench_home() {
    export ADMINBUS_HOME
    ADMINBUS_HOME="$(mktemp -d "/tmp/ab$BENCH_NAME.XXXXXX")"
    LOG="$ADMINBUS_HOME/log"
    mkdir -p "$LOG"
    PIDS=()
    BENCH_PID=""
    OWN_DB=0
    SQL_CNF="$ADMINBUS_HOME/bench-client.cnf"
    declare -gA DSN_OF=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# dsn_field DSN FIELD — one part of mariadb://user[:password]@[host][:port]/db[?socket=PATH].
dsn_field() {
    local re='^mariadb://([^:@]*)(:([^@]*))?@([^:/]*)(:([0-9]+))?/([^?]*)(\?socket=(.*))?$'
    [[ "$1" =~ $re ]] || die "not a DSN: $1"
    case "$2" in
    user) echo "${BASH_REMATCH[1]}" ;;
    password) echo "${BASH_REMATCH[3]}" ;;
    host) echo "${BASH_REMATCH[4]}" ;;
    port) echo "${BASH_REMATCH[6]}" ;;
    socket) echo "${BASH_REMATCH[9]}" ;;
    esac
}

# dsn_with_db DSN DB — the same DSN naming another database.
dsn_with_db() {
    local re='^(mariadb://[^/]*/)[^?]*(.*)$'
    [[ "$1" =~ $re ]] || die "not a DSN: $1"
    echo "${BASH_REMATCH[1]}$2${BASH_REMATCH[2]}"
}

write_sql_cnf() {
    local dsn="$1" host port socket
    host="$(dsn_field "$dsn" host)" port="$(dsn_field "$dsn" port)"
    socket="$(dsn_field "$dsn" socket)"
    (
        umask 077
        printf '[client]\nuser=%s\npassword=%s\nhost=%s\n' "$(dsn_field "$dsn" user)" \
            "$(dsn_field "$dsn" password)" "${host:-localhost}" >"$SQL_CNF"
        [ -z "$port" ] || printf 'port=%s\n' "$port" >>"$SQL_CNF"
        [ -z "$socket" ] || printf 'socket=%s\n' "$socket" >>"$SQL_CNF"
    )
}

sql() { mariadb --defaults-file="$SQL_CNF" "$@"; }

# bench_databases NAME… — empty databases NAME… (NAME_<pid> on a shared server, dropped
# at exit), their DSNs in DSN_OF[name] and the name actually used in DB_NAME[name].
bench_databases() {
    local name db
    declare -gA DB_NAME=()
    if [ -n "${ADMINBUS_TEST_DSN:-}" ]; then
        BASE_DSN="$ADMINBUS_TEST_DSN"
    else
        echo "== starting a private MariaDB in $ADMINBUS_HOME" >&2
        OWN_DB=1
        "$ROOT/ops/db" init >&2
        "$ROOT/ops/db" start >&2
        BASE_DSN="$("$ROOT/ops/db" dsn)"
    fi
    write_sql_cnf "$BASE_DSN"
    for name in "$@"; do
        db="$name"
        [ "$OWN_DB" = 1 ] || db="${name}_$$"
        DB_NAME[$name]="$db"
        sql -e "DROP DATABASE IF EXISTS \`$db\`;
                CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        DSN_OF[$db]="$(dsn_with_db "$BASE_DSN" "$db")"
    done
}

# dsn_of NAME — the DSN of a database made by bench_databases.
dsn_of() { echo "${DSN_OF[${DB_NAME[$1]}]}"; }

free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# bench_configure DSN [EXTRA] — adminbus.conf (0600) for the engine's database DSN and two
# free ports (commands, events), FLAGS with the same settings (they win over the caller's ADMINBUS_*
# variables), and EXTRA more free ports in EXTRA_PORTS; then `adminbus-engine --init`,
# whose site admin key is exported as ADMINBUS_AUTHKEY (not on a command line ps shows).
bench_configure() {
    local dsn="$1" extra="${2:-0}" kv ports
    read -r -a ports <<<"$(free_ports $((2 + extra)))"
    P_CMD=${ports[0]} P_EVT=${ports[1]}
    EXTRA_PORTS=("${ports[@]:2}")
    local settings=(
        "db_dsn=$dsn"
        "commands_endpoint=tcp://127.0.0.1:$P_CMD"
        "events_endpoint=tcp://127.0.0.1:$P_EVT"
    )
    local conf="$ADMINBUS_HOME/adminbus.conf"
    {
        if [ -f "$conf" ]; then
            grep -v '^[[:space:]]*db_dsn[[:space:]]*=' "$conf" || true
        fi
        printf '%s\n' "${settings[@]}"
    } >"$conf.new"
    chmod 600 "$conf.new"
    mv -f "$conf.new" "$conf"
    FLAGS=("--home=$ADMINBUS_HOME")
    for kv in "${settings[@]}"; do
        FLAGS+=("--${kv%%=*}=${kv#*=}")
    done
    echo "== initialising the engine" >&2
    "$BIN/adminbus-engine" "${FLAGS[@]}" --init >"$LOG/engine-init.log" 2>&1 ||
        { cat "$LOG/engine-init.log" >&2; die "adminbus-engine --init failed"; }
    ADMINBUS_AUTHKEY="$(sed -n 's/^ADMINBUS_AUTHKEY=//p' "$LOG/engine-init.log" | tail -n 1)"
    [ -n "$ADMINBUS_AUTHKEY" ] ||
        { cat "$LOG/engine-init.log" >&2; die "adminbus-engine --init printed no ADMINBUS_AUTHKEY"; }
    export ADMINBUS_AUTHKEY
}

# bench_start_bus — the broker and the engine, in the background.
bench_start_bus() {
    "$BIN/adminbus-broker" "${FLAGS[@]}" >"$LOG/broker.log" 2>&1 &
    PIDS+=($!)
    "$BIN/adminbus-engine" "${FLAGS[@]}" >"$LOG/engine.log" 2>&1 &
    PIDS+=($!)
}

# bench_alive — die when a process of the stack has exited.
bench_alive() {
    local p
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || die "a process of the stack (pid $p) exited during start"
    done
}

# bench_run PROGRAM ARGS… — run a benchmark program in the background and wait for it, so
# that a signal reaches the trap at once (bash runs traps only between foreground
# commands); its output is shown and appended to $RESULTS.raw.
bench_run() {
    local out="$LOG/bench.out" prog="$1"
    shift
    "$BIN/$prog" "$@" >"$out" &
    BENCH_PID=$!
    local rc=0
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=""
    cat "$out"
    cat "$out" >>"$RESULTS.raw"
    return "$rc"
}
