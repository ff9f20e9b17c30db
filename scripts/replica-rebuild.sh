#!/bin/sh
# Rebuilds the newest state of one replication generation by hand, with stock tools only (age, gunzip, sqlite3):
# the operator's last resort when the service itself is gone. See docs/replication.md.
#
#   scripts/replica-rebuild.sh IDENTITY_FILE GENERATION_DIR OUT.db
#
# GENERATION_DIR is a local copy of <prefix>replica/<generation>/ (e.g. `aws s3 cp --recursive`). OUT.db must not
# exist. Each WAL cycle's segments are concatenated into OUT.db-wal (the first one of a cycle starts with the
# cycle's WAL header) and SQLite recovers and checkpoints them; the result is a standalone rollback-journal file.
set -eu
identity="$1"
generation="$2"
out="$3"
if [ -e "$out" ]; then
  echo "refusing to overwrite $out" >&2
  exit 1
fi
wal="$out-wal"
age -d -i "$identity" "$generation/snapshot.db.gz.age" | gunzip > "$out"
apply() {
  if [ -f "$wal" ]; then
    sqlite3 "$out" "SELECT count(*) FROM sqlite_master; PRAGMA wal_checkpoint(TRUNCATE);" > /dev/null
    rm -f "$wal"
  fi
}
for segment in "$generation"/wal/*.wal.gz.age; do
  [ -e "$segment" ] || continue
  start=$(sed -n 's/^ *"start_offset": *\([0-9]*\).*/\1/p' "${segment%.wal.gz.age}.json")
  if [ "$start" = 32 ]; then
    apply
  fi
  age -d -i "$identity" "$segment" | gunzip >> "$wal"
done
apply
sqlite3 "$out" "PRAGMA journal_mode=DELETE;" > /dev/null
sqlite3 "$out" "PRAGMA integrity_check;"
