#!/bin/sh
# operon backup plugin: the command of a PostgresBackup's Job. Copies the
# cluster's data into $ARTIFACT_DIR with the method's tool, then writes
# the artifact's size to the termination message, where the plugin reads
# it. The layout is what restore.sh reads:
#
#   dump        globals.sql (roles, no passwords) + <database>.dump (pg_dump -Fc) each
#   dumpall     dumpall.sql (pg_dumpall: roles with passwords, every database)
#   basebackup  base.tar.gz + pg_wal.tar.gz (pg_basebackup -Ft -z -X stream)
#
# A file `complete` is written last: a directory without it is a partial
# artifact (a Job killed midway), which restore.sh refuses.
#
# Environment: METHOD, DATABASES (dump; empty = all but the templates),
# ARTIFACT_DIR, PGHOST, PGPORT, PGUSER, PGPASSWORD; optional
# TERMINATION_LOG (default /dev/termination-log).
set -eu
log() { echo "backup.sh: $*" >&2; }
tries=0
until pg_isready -q; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { log "$PGHOST:$PGPORT not ready after 60 tries"; exit 1; }
    sleep 2
done
rm -rf "$ARTIFACT_DIR"
mkdir -p "$ARTIFACT_DIR"
cd "$ARTIFACT_DIR"
case "$METHOD" in
dump)
    if [ -z "${DATABASES:-}" ]; then
        DATABASES="$(psql -X -At -d postgres -c "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")"
    fi
    pg_dumpall --globals-only --no-role-passwords -f globals.sql
    for db in $DATABASES; do
        log "pg_dump $db"
        pg_dump -Fc -d "$db" -f "$db.dump"
    done
    ;;
dumpall)
    log "pg_dumpall"
    pg_dumpall -f dumpall.sql
    ;;
basebackup)
    log "pg_basebackup from $PGHOST"
    pg_basebackup -D . -Ft -z -X stream --checkpoint=fast
    ;;
*)
    log "unknown method $METHOD"
    exit 2
    ;;
esac
echo "$METHOD" > complete
size="$(du -sk . | cut -f1)"
log "done: $((size * 1024)) bytes in $ARTIFACT_DIR"
echo "size=$((size * 1024))" > "${TERMINATION_LOG:-/dev/termination-log}" || true
