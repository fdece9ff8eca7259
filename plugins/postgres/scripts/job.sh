#!/bin/sh
# operon postgres plugin: the command of the SQL Job and of the data-load
# Jobs. Waits for the primary (PGHOST/PGPORT), then runs the psql script in
# $SQL against $PGDATABASE (default postgres), stopping at the first error.
# Passwords arrive as environment variables (PW_0, PW_1, ... from Secrets)
# that the script reads with \getenv, so they never appear in a Job's spec;
# a data load reads the file named by $LOAD_FILE (a ConfigMap key).
set -eu
tries=0
until pg_isready -q; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "job.sh: $PGHOST:$PGPORT not ready after 60 tries" >&2; exit 1; }
    sleep 2
done
if [ -n "${LOAD_FILE:-}" ] && [ ! -r "$LOAD_FILE" ]; then
    echo "job.sh: $LOAD_FILE is not readable" >&2
    exit 1
fi
printf '%s\n' "$SQL" | psql -X -q -v ON_ERROR_STOP=1 -d "${PGDATABASE:-postgres}" -f -
