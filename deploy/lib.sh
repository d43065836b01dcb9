# shellcheck shell=bash
# Helpers that bring up the local dependencies of callq: PostgreSQL and RabbitMQ on
# 127.0.0.1. Sourced by deploy/run-local.sh and by the test scripts:
#
#   . deploy/lib.sh
#   ensure_postgres && ensure_rabbitmq && ensure_database callq
#
# Every function is idempotent and returns at once when the service already answers, so
# callers can run them before each test run. They work under `set -euo pipefail` and never
# change the caller's shell options. Progress goes to stderr as "==> ..." lines; failures
# return non-zero with an "error: ..." line.
#
# Services this file had to start are appended to CALLQ_STARTED (e.g. "PostgreSQL
# RabbitMQ"); they are left running, since other processes may be using them by then.
#
# Tunables (environment): CALLQ_PG_PORT (5432), CALLQ_AMQP_PORT (5672),
# CALLQ_WAIT_SECS (60, how long a started service may take to answer).

: "${CALLQ_PG_PORT:=5432}"
: "${CALLQ_AMQP_PORT:=5672}"
: "${CALLQ_WAIT_SECS:=60}"
: "${CALLQ_STARTED:=}"
# Where Debian keeps cluster configs; overridable only so the helpers can be tested.
: "${_CALLQ_PG_ETC:=/etc/postgresql}"

_callq_log() { printf '==> %s\n' "$*" >&2; }
_callq_err() { printf 'error: %s\n' "$*" >&2; }

# apt-get, pg_ctlcluster and rabbitmq-server need root; the test machines run as root, a
# developer laptop usually has sudo.
_callq_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _callq_err "need root (or sudo) to run: $*"
        return 1
    fi
}

_callq_apt_updated=
_callq_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        _callq_err "$* is not installed and apt-get is unavailable; install it by hand"
        return 1
    fi
    # A fresh image has no package lists at all, so update once before the first install.
    if [ -z "$_callq_apt_updated" ]; then
        _callq_log "apt-get update"
        _callq_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
        _callq_apt_updated=1
    fi
    _callq_log "installing $* (apt-get)"
    _callq_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >&2 || return 1
}

# callq_port_open HOST PORT: true when something accepts TCP connections there. Uses bash's
# /dev/tcp so that no netcat is needed; `timeout` bounds hosts that drop SYNs.
callq_port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------- PostgreSQL

_callq_pg_ready() {
    command -v pg_isready >/dev/null 2>&1 &&
        pg_isready -q -h 127.0.0.1 -p "$CALLQ_PG_PORT" >/dev/null 2>&1
}

# Connects the way the binaries do (TCP, user postgres, no password); -w makes a password
# prompt a failure instead of a hang.
_callq_psql() {
    psql -X -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$CALLQ_PG_PORT" -U postgres -d postgres "$@"
}

# Prints "VERSION NAME" of the Debian cluster configured on CALLQ_PG_PORT (newest version
# wins if several claim it); prints nothing when there is none.
_callq_pg_cluster() {
    pg_lsclusters --no-header 2>/dev/null |
        awk -v port="$CALLQ_PG_PORT" '$3 == port { print $1, $2 }' |
        sort -V | tail -n 1
}

ensure_postgres() {
    if ! _callq_pg_ready; then
        if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d "$_CALLQ_PG_ETC" ]; then
            _callq_apt_install postgresql || return 1
        fi

        local cluster ver name
        cluster=$(_callq_pg_cluster)
        if [ -z "$cluster" ]; then
            # The package normally creates "main" itself; it does not when a cluster
            # already owned the port or create_main_cluster is off.
            ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
            if [ -z "$ver" ]; then
                _callq_err "no PostgreSQL server found under /usr/lib/postgresql"
                return 1
            fi
            _callq_log "creating PostgreSQL cluster $ver/main on port $CALLQ_PG_PORT"
            _callq_root pg_createcluster --port "$CALLQ_PG_PORT" "$ver" main >&2 || return 1
            cluster="$ver main"
        fi
        read -r ver name <<<"$cluster"

        _callq_log "starting PostgreSQL $ver/$name"
        # Fails with "already running" when the server is up but still recovering; the
        # wait below is what decides.
        _callq_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 || true

        local deadline=$((SECONDS + CALLQ_WAIT_SECS))
        until _callq_pg_ready; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                _callq_err "PostgreSQL did not accept connections on 127.0.0.1:$CALLQ_PG_PORT within ${CALLQ_WAIT_SECS}s"
                tail -n 20 "/var/log/postgresql/postgresql-$ver-$name.log" >&2 2>/dev/null || true
                return 1
            fi
            sleep 1
        done
        CALLQ_STARTED="${CALLQ_STARTED:+$CALLQ_STARTED }PostgreSQL"
    fi
    _callq_pg_trust_local
}

# The binaries connect as postgres over TCP without a password. Debian's default
# pg_hba.conf asks for scram on 127.0.0.1, so on a fresh install prepend trust rules for
# loopback (the first matching line wins) and reload.
_callq_pg_trust_local() {
    if _callq_psql -Atqc 'select 1' >/dev/null 2>&1; then
        return 0
    fi
    local cluster ver name hba
    cluster=$(_callq_pg_cluster)
    if [ -z "$cluster" ]; then
        _callq_err "cannot connect as postgres to 127.0.0.1:$CALLQ_PG_PORT, and no Debian cluster on that port to fix"
        _callq_psql -Atqc 'select 1' >/dev/null || true # shows libpq's reason
        return 1
    fi
    read -r ver name <<<"$cluster"
    hba="$_CALLQ_PG_ETC/$ver/$name/pg_hba.conf"
    if ! grep -q '^# callq: trust loopback' "$hba" 2>/dev/null; then
        _callq_log "allowing password-less loopback connections in $hba"
        local tmp
        tmp=$(mktemp) || return 1
        # cp onto the existing file keeps its owner and mode.
        if ! {
            echo '# callq: trust loopback (added by deploy/lib.sh for local development)'
            echo 'host    all    all    127.0.0.1/32    trust'
            echo 'host    all    all    ::1/128         trust'
            _callq_root cat "$hba"
        } >"$tmp" || ! _callq_root cp "$tmp" "$hba"; then
            rm -f "$tmp"
            _callq_err "could not update $hba"
            return 1
        fi
        rm -f "$tmp"
    fi
    _callq_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >&2 || return 1
    if ! _callq_psql -Atqc 'select 1' >/dev/null; then
        _callq_err "still cannot connect as postgres to 127.0.0.1:$CALLQ_PG_PORT; check $hba"
        return 1
    fi
}

# ensure_database NAME: creates the database when missing (owner postgres).
ensure_database() {
    local db=${1:?usage: ensure_database NAME}
    # Spliced into SQL below, so only plain identifiers are accepted.
    if ! [[ $db =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        _callq_err "ensure_database: '$db' is not a plain identifier"
        return 1
    fi
    local exists
    exists=$(_callq_psql -Atqc "select 1 from pg_database where datname = '$db'") || return 1
    [ "$exists" = 1 ] && return 0
    _callq_log "creating database $db"
    if ! _callq_psql -qc "create database \"$db\"" >/dev/null 2>&1; then
        # Another script may have created it between the check and here.
        exists=$(_callq_psql -Atqc "select 1 from pg_database where datname = '$db'") || return 1
        if [ "$exists" != 1 ]; then
            _callq_psql -qc "create database \"$db\"" >/dev/null # repeat to show the reason
            return 1
        fi
    fi
}

# ------------------------------------------------------------------------------ RabbitMQ

ensure_rabbitmq() {
    if callq_port_open 127.0.0.1 "$CALLQ_AMQP_PORT"; then
        return 0
    fi
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        # The package's postinst may already start a node; the start below then just
        # reports that one is running, and the wait covers both cases.
        _callq_apt_install rabbitmq-server || return 1
    fi

    _callq_log "starting RabbitMQ..."
    # -detached returns before the node is up (or fails because one is already booting).
    _callq_root rabbitmq-server -detached >/dev/null 2>&1 || true

    # await_startup fails outright until the node has registered with epmd, so retry it;
    # each attempt is bounded because on a node that hangs in boot it would wait minutes.
    local deadline=$((SECONDS + CALLQ_WAIT_SECS))
    until _callq_root timeout 20 rabbitmqctl -q await_startup >/dev/null 2>&1 &&
        callq_port_open 127.0.0.1 "$CALLQ_AMQP_PORT"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            _callq_err "RabbitMQ did not accept connections on 127.0.0.1:$CALLQ_AMQP_PORT within ${CALLQ_WAIT_SECS}s (logs: /var/log/rabbitmq/)"
            return 1
        fi
        sleep 2
    done
    CALLQ_STARTED="${CALLQ_STARTED:+$CALLQ_STARTED }RabbitMQ"
}

# promtool, which checks and unit-tests the Prometheus alert rules: Debian ships it in the
# prometheus package. Installing it never leaves a Prometheus server running here: the
# package's service is stopped if the install started it.
ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    local running=
    pgrep -x prometheus >/dev/null 2>&1 && running=1
    _callq_apt_install prometheus || return 1
    if [ -z "$running" ] && pgrep -x prometheus >/dev/null 2>&1; then
        if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
            _callq_root systemctl stop prometheus || true
        elif [ -x /etc/init.d/prometheus ]; then
            _callq_root /etc/init.d/prometheus stop >&2 || true
        fi
    fi
    command -v promtool >/dev/null 2>&1 || { _callq_err "promtool missing after installing prometheus"; return 1; }
}
