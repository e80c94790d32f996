#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for the test suite.
#
#   .ci/postgres.sh start DIR   create + start a cluster in DIR, print its SQLAlchemy URL
#   .ci/postgres.sh stop DIR    stop it (fast mode) and remove DIR
#
# The cluster has trust auth, listens on 127.0.0.1 only (free port), keeps its unix
# socket inside DIR and runs with fsync/full_page_writes/synchronous_commit off: it is
# for tests only and loses data on a crash by design.
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user
# (runuser); as any other user it runs as that user. The database superuser is always
# called `postgres`, so the printed URL is the same either way:
#
#   postgresql+psycopg://postgres@127.0.0.1:PORT/looplab_test
#
# Typical developer use:
#   url=$(.ci/postgres.sh start /tmp/looplab-pg)
#   LOOPLAB_TEST_POSTGRES_URL=$url make test PYTEST_ARGS="-m postgres"
#   .ci/postgres.sh stop /tmp/looplab-pg
#
# Environment: PG_BIN (directory holding initdb/pg_ctl; found automatically otherwise),
# PG_DATABASE (default looplab_test), PG_MAX_CONNECTIONS (default 200).
set -euo pipefail

PROG=${0##*/}
MARKER=.looplab-throwaway-postgres
DATABASE=${PG_DATABASE:-looplab_test}
MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-200}

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }

usage() {
    cat >&2 <<EOF
usage: $PROG start DIR   create and start a throwaway PostgreSQL cluster in DIR;
                         prints its SQLAlchemy URL on stdout
       $PROG stop DIR    stop the cluster in DIR and remove DIR
EOF
    exit 2
}

# Directory holding initdb, pg_ctl, pg_isready, psql: $PG_BIN, else the newest
# /usr/lib/postgresql/*/bin (Debian), else wherever `initdb` on PATH really lives.
find_pg_bin() {
    if [[ -n ${PG_BIN:-} ]]; then
        [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]] || die "PG_BIN=$PG_BIN has no initdb/pg_ctl"
        printf '%s\n' "$PG_BIN"
        return
    fi
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb && -x $d/pg_ctl ]] || continue
        if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n1) == "$d" ]]; then
            best=$d
        fi
    done
    if [[ -z $best ]] && command -v initdb >/dev/null 2>&1; then
        best=$(dirname "$(readlink -f "$(command -v initdb)")")
        [[ -x $best/pg_ctl ]] || best=""
    fi
    [[ -n $best ]] || die "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin nor on PATH; install them (Debian: apt-get install postgresql) or set PG_BIN"
    printf '%s\n' "$best"
}

# Run a server-side command as the account that owns the cluster.
AS_PG=()
setup_account() {
    if [[ $EUID -eq 0 ]]; then
        id -u postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server as (Debian: apt-get install postgresql creates it)"
        command -v runuser >/dev/null 2>&1 || die "running as root but 'runuser' (util-linux) is missing"
        AS_PG=(runuser -u postgres --)
    fi
}
as_pg() { "${AS_PG[@]}" "$@"; }

# Absolute path without requiring that it exists.
abspath() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$PWD" "$1" ;;
    esac
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        printf '%s\n' $((20000 + RANDOM % 40000))
    fi
}

sql_quote() { printf "'%s'" "${1//\'/\'\'}"; }

cmd_start() {
    local dir pgbin data sockdir logfile port attempt ok i
    dir=$(abspath "$1")
    pgbin=$(find_pg_bin)
    setup_account

    if [[ -e $dir ]]; then
        [[ -d $dir ]] || die "$dir exists and is not a directory"
        [[ -z $(ls -A "$dir") ]] || die "$dir is not empty (a cluster already there? run: $PROG stop $dir)"
    else
        mkdir -p "$dir" || die "cannot create $dir"
    fi
    : > "$dir/$MARKER" || die "cannot write in $dir"
    chmod 700 "$dir"
    if [[ $EUID -eq 0 ]]; then
        chown -R postgres:postgres "$dir"
        as_pg test -w "$dir" \
            || die "the postgres user cannot reach $dir (is a parent directory private to root?); use a directory under /tmp"
    fi
    # Server commands may run as another user: keep them off an unreadable cwd (e.g. /root).
    cd "$dir"

    data=$dir/data
    sockdir=$dir/run
    logfile=$dir/postgres.log
    # A unix socket path is limited to 107 bytes: $sockdir/.s.PGSQL.NNNNN
    (( ${#sockdir} + 18 <= 107 )) || die "$dir is too long a path for a unix socket directory; pick a shorter one"
    as_pg mkdir -p "$sockdir"

    if ! as_pg "$pgbin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale \
            --no-sync --no-instructions >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed (see above)"
    fi

    {
        echo
        echo "# throwaway test cluster (.ci/postgres.sh)"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = $(sql_quote "$sockdir")"
        echo "max_connections = $MAX_CONNECTIONS"
        echo "fsync = off"
        echo "full_page_writes = off"
        echo "synchronous_commit = off"
    } | as_pg tee -a "$data/postgresql.conf" >/dev/null

    # The port is free when picked but could be taken before the server binds it: retry.
    ok=""
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        if as_pg "$pgbin/pg_ctl" -D "$data" -l "$logfile" -o "-p $port" -w -t 60 -s start >&2; then
            ok=1
            break
        fi
        if grep -qiE 'could not bind|address already in use' "$logfile" 2>/dev/null; then
            note "port $port was taken, retrying with another one"
            as_pg "$pgbin/pg_ctl" -D "$data" -m immediate -s stop >/dev/null 2>&1 || true
            continue
        fi
        break
    done
    if [[ -z $ok ]]; then
        tail -n 30 "$logfile" >&2 2>/dev/null || true
        die "the PostgreSQL server in $data did not start (log: $logfile)"
    fi
    printf '%s\n' "$port" | as_pg tee "$dir/port" >/dev/null

    # pg_ctl -w waits for the postmaster; check the TCP listener too (bounded, ~15 s).
    local isready=$pgbin/pg_isready psql=$pgbin/psql
    [[ -x $isready ]] || isready=$(command -v pg_isready || true)
    [[ -x $psql ]] || psql=$(command -v psql || die "psql not found (Debian: apt-get install postgresql-client)")
    for i in $(seq 1 75); do
        if [[ -n $isready ]]; then
            "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2 && break
        else
            "$psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1 && break
        fi
        (( i < 75 )) || { tail -n 30 "$logfile" >&2 || true; die "server started but does not answer on 127.0.0.1:$port"; }
        sleep 0.2
    done

    env -u PGSERVICE -u PGOPTIONS -u PGSSLMODE "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE DATABASE \"$DATABASE\"" >&2 \
        || die "could not create database $DATABASE"

    printf 'postgresql+psycopg://postgres@127.0.0.1:%s/%s\n' "$port" "$DATABASE"
}

cmd_stop() {
    local dir pgbin
    dir=$(abspath "$1")
    [[ -e $dir ]] || return 0  # nothing to do
    [[ -d $dir ]] || die "$dir is not a directory"
    if [[ ! -e $dir/$MARKER ]]; then
        # Only ever delete what `start` created; an empty dir (start failed early) is fine.
        [[ -z $(ls -A "$dir") ]] || die "$dir was not created by '$PROG start'; not removing it"
        rmdir "$dir"
        return 0
    fi
    if [[ -f $dir/data/postmaster.pid ]]; then
        pgbin=$(find_pg_bin)
        setup_account
        cd /
        if ! as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 30 -s stop >&2; then
            # Exit status 3 from `status`: not running (stale postmaster.pid after a crash).
            local st=0
            as_pg "$pgbin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || st=$?
            if [[ $st -ne 3 ]]; then
                note "fast shutdown failed; trying immediate shutdown"
                as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 -s stop >&2 \
                    || die "could not stop the server in $dir/data; not removing $dir"
            fi
        fi
    fi
    rm -rf -- "$dir"
}

[[ $# -eq 2 ]] || usage
[[ -n $2 ]] || usage
case $1 in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    *) usage ;;
esac
