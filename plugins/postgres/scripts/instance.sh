#!/bin/sh
# operon postgres plugin: the entrypoint of every instance (shipped in the
# cluster's ConfigMap, run as the postgres user). The plugin decides the
# role; this script makes the data directory match it, then runs postgres.
#
#   primary, empty volume  -> initdb, create the replication role
#   replica, empty volume  -> pg_basebackup from the primary (PG_PRIMARY_HOST)
#   replica, old major     -> wipe and clone again (after a major upgrade)
#   replica, was a primary -> pg_rewind from the new primary (re-clone if that fails)
#   primary, was a replica -> start as a standby, then pg_ctl promote
#
# Environment: PGDATA PGPORT PG_MAJOR PG_ROLE PG_PRIMARY_HOST PG_CONFIG_DIR
# POSTGRES_PASSWORD PG_REPLICATION_PASSWORD, optional PG_WALDIR,
# PG_INITDB_ARGS and PG_PRIMARY_PORT (default PGPORT).
set -eu

log() { echo "instance.sh: $*" >&2; }
conf="-c config_file=$PG_CONFIG_DIR/postgresql.conf -c hba_file=$PG_CONFIG_DIR/pg_hba.conf"
primary_port="${PG_PRIMARY_PORT:-$PGPORT}"
source_conn="host=$PG_PRIMARY_HOST port=$primary_port user=replicator password=$PG_REPLICATION_PASSWORD dbname=postgres application_name=${PG_INSTANCE:-replica}"

mkdir -p "$PGDATA"
chmod 700 "$PGDATA"

clone() {
    log "cloning from $PG_PRIMARY_HOST:$primary_port"
    find "$PGDATA" -mindepth 1 -delete
    if [ -n "${PG_WALDIR:-}" ]; then
        rm -rf "$PG_WALDIR"
        PGPASSWORD="$PG_REPLICATION_PASSWORD" pg_basebackup -h "$PG_PRIMARY_HOST" -p "$primary_port" -U replicator \
            -D "$PGDATA" -X stream --checkpoint=fast --waldir="$PG_WALDIR"
    else
        PGPASSWORD="$PG_REPLICATION_PASSWORD" pg_basebackup -h "$PG_PRIMARY_HOST" -p "$primary_port" -U replicator \
            -D "$PGDATA" -X stream --checkpoint=fast
    fi
}

if [ -s "$PGDATA/PG_VERSION" ] && [ "$(cat "$PGDATA/PG_VERSION")" != "$PG_MAJOR" ]; then
    if [ "$PG_ROLE" = replica ]; then
        log "data is PostgreSQL $(cat "$PGDATA/PG_VERSION"), not $PG_MAJOR: cloning again"
        find "$PGDATA" -mindepth 1 -delete
    else
        log "data is PostgreSQL $(cat "$PGDATA/PG_VERSION"), not $PG_MAJOR: the upgrade Job has not run"
        exit 1
    fi
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ "$PG_ROLE" = primary ]; then
        log "initdb (PostgreSQL $PG_MAJOR)"
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        # shellcheck disable=SC2086 # PG_INITDB_ARGS is a list of options
        initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 \
            ${PG_WALDIR:+--waldir="$PG_WALDIR"} ${PG_INITDB_ARGS:-}
        rm -f "$pwfile"
        # The generated passwords are alphanumeric: no quoting needed.
        echo "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '$PG_REPLICATION_PASSWORD';" \
            | postgres --single -D "$PGDATA" $conf postgres >/dev/null
    else
        clone
    fi
    was_primary=no
else
    if [ -f "$PGDATA/standby.signal" ]; then was_primary=no; else was_primary=yes; fi
fi

if [ "$PG_ROLE" = replica ]; then
    if [ "$was_primary" = yes ]; then
        log "this instance was a primary: pg_rewind from $PG_PRIMARY_HOST"
        if ! PGPASSWORD="$POSTGRES_PASSWORD" pg_rewind -D "$PGDATA" \
            --source-server="host=$PG_PRIMARY_HOST port=$primary_port user=postgres dbname=postgres"; then
            log "pg_rewind failed: cloning again (changes not replicated before the failover are lost)"
            clone
        fi
    fi
    touch "$PGDATA/standby.signal"
    # shellcheck disable=SC2086
    exec postgres -D "$PGDATA" $conf -c primary_conninfo="$source_conn"
fi

if [ -f "$PGDATA/standby.signal" ]; then
    log "promoting this standby to primary"
    # shellcheck disable=SC2086
    postgres -D "$PGDATA" $conf &
    pid=$!
    trap 'kill -TERM $pid' TERM INT
    until pg_isready -q -h 127.0.0.1 -p "$PGPORT"; do
        kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit 1; }
        sleep 1
    done
    pg_ctl promote -D "$PGDATA" -w
    set +e
    wait "$pid"
    rc=$?
    # A signal interrupts `wait` (status > 128): wait for postgres itself.
    if [ "$rc" -gt 128 ]; then wait "$pid"; rc=$?; fi
    exit "$rc"
fi

# shellcheck disable=SC2086
exec postgres -D "$PGDATA" $conf
