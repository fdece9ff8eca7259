#!/bin/sh
# operon backup plugin: restores an artifact of backup.sh into an empty
# data directory. The postgres plugin runs it in the restore Job of a
# PostgresCluster with `bootstrap.fromBackup`, on the primary's volumes,
# before the instance first starts (it includes this file).
#
#   dump        initdb, the roles of globals.sql, pg_restore -C of each <db>.dump
#   dumpall     initdb, psql of dumpall.sql
#   basebackup  untar base.tar.gz (and pg_wal.tar.gz); recovery on first start
#
# The work happens in $PGDATA.restoring on a private server (Unix socket,
# trust) and is renamed to $PGDATA at the end, so a Job killed midway
# leaves no half-restored data directory; a $PGDATA that exists is
# already restored and left alone. The roles `postgres` and `replicator`
# are the new cluster's: the backup's are skipped and the passwords set
# from POSTGRES_PASSWORD and PG_REPLICATION_PASSWORD.
#
# Environment: PGDATA, ARTIFACT_DIR, POSTGRES_PASSWORD,
# PG_REPLICATION_PASSWORD, optional PG_WALDIR, PG_INITDB_ARGS.
set -eu
log() { echo "restore.sh: $*" >&2; }
if [ -s "$PGDATA/PG_VERSION" ]; then
    log "$PGDATA exists: already restored"
    exit 0
fi
if [ ! -f "$ARTIFACT_DIR/complete" ]; then
    log "$ARTIFACT_DIR has no file 'complete': not a finished backup"
    exit 1
fi
method="$(cat "$ARTIFACT_DIR/complete")"
work="$PGDATA.restoring"
rm -rf "$work"
mkdir -p "$work"
chmod 700 "$work"
case "$method" in
basebackup)
    log "unpacking the base backup"
    tar -xzf "$ARTIFACT_DIR/base.tar.gz" -C "$work"
    if [ -n "${PG_WALDIR:-}" ]; then
        rm -rf "$PG_WALDIR" "$work/pg_wal"
        mkdir -p "$PG_WALDIR"
        tar -xzf "$ARTIFACT_DIR/pg_wal.tar.gz" -C "$PG_WALDIR"
        ln -s "$PG_WALDIR" "$work/pg_wal"
    else
        tar -xzf "$ARTIFACT_DIR/pg_wal.tar.gz" -C "$work/pg_wal"
    fi
    rm -f "$work/standby.signal" "$work/recovery.signal" "$work/postmaster.pid"
    ;;
dump | dumpall)
    log "initdb"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    [ -z "${PG_WALDIR:-}" ] || rm -rf "$PG_WALDIR"
    # shellcheck disable=SC2086 # PG_INITDB_ARGS is a list of options
    initdb -D "$work" -U postgres --pwfile="$pwfile" --auth-local=peer --auth-host=scram-sha-256 \
        ${PG_WALDIR:+--waldir="$PG_WALDIR"} ${PG_INITDB_ARGS:-} >/dev/null
    rm -f "$pwfile"
    ;;
*)
    log "unknown method $method in $ARTIFACT_DIR/complete"
    exit 1
    ;;
esac

sock="$(mktemp -d)"
printf 'local all all trust\n' > "$sock/hba.conf"
pg_ctl -D "$work" -w -t 600 -l "$sock/server.log" start \
    -o "-c listen_addresses='' -c unix_socket_directories=$sock -c hba_file=$sock/hba.conf" \
    || { cat "$sock/server.log" >&2; exit 1; }
stop() { pg_ctl -D "$work" -w -m fast stop >/dev/null 2>&1 || true; }
trap stop EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -U postgres "$@"; }
# The backup's own postgres and replicator roles are not restored.
without_managed_roles() {
    grep -v -E '^(CREATE|ALTER) ROLE "?(postgres|replicator)"?( |;)' "$1"
}
case "$method" in
dump)
    log "roles"
    without_managed_roles "$ARTIFACT_DIR/globals.sql" | psql -d postgres -f -
    for f in "$ARTIFACT_DIR"/*.dump; do
        [ -e "$f" ] || continue
        db="$(basename "$f" .dump)"
        log "pg_restore $db"
        if [ "$db" = postgres ]; then
            pg_restore -h "$sock" -U postgres -d postgres --exit-on-error "$f"
        else
            pg_restore -h "$sock" -U postgres -d postgres -C --exit-on-error "$f"
        fi
    done
    ;;
dumpall)
    log "psql dumpall.sql"
    without_managed_roles "$ARTIFACT_DIR/dumpall.sql" | psql -d postgres -f -
    ;;
esac
psql -d postgres -v pw="$POSTGRES_PASSWORD" -v rpw="$PG_REPLICATION_PASSWORD" -f - <<'SQL'
SELECT 'CREATE ROLE replicator' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator')
\gexec
ALTER ROLE replicator WITH REPLICATION LOGIN PASSWORD :'rpw';
ALTER ROLE postgres WITH PASSWORD :'pw';
SQL
stop
trap - EXIT
rm -rf "$sock"
rmdir "$PGDATA" 2>/dev/null || true # an empty directory made before
mv "$work" "$PGDATA"
log "restored $method from $ARTIFACT_DIR into $PGDATA"
