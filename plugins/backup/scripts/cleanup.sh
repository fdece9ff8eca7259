#!/bin/sh
# operon backup plugin: the command of the cleanup Job run before a
# PostgresBackup with `deletionPolicy: Delete` goes. Removes its artifact
# directory $ARTIFACT_DIR (under the volume's mount, BACKUP_MOUNT, default
# /backup); a missing directory is already clean.
set -eu
mount="${BACKUP_MOUNT:-/backup}"
case "$ARTIFACT_DIR" in
*/../* | */..) echo "cleanup.sh: refusing $ARTIFACT_DIR (contains ..)" >&2; exit 2 ;;
"$mount"/?*) ;;
*) echo "cleanup.sh: refusing to remove $ARTIFACT_DIR (not under $mount/)" >&2; exit 2 ;;
esac
rm -rf "$ARTIFACT_DIR"
echo "cleanup.sh: removed $ARTIFACT_DIR" >&2
