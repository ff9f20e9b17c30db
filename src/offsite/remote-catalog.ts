import { parseBackupName, SAFETY_PREFIX } from '../backups/backup-name';
import type { RemoteBackupDto } from './dto/offsite.dto';
import type { OffsiteBucket } from './offsite-bucket';
import { backupNameOfObject, manifestObjectName, parseRemoteManifest } from './remote-objects';

/** What this machine already knows of an object it uploaded, so listing needs no GET of its manifest. */
export interface KnownCopy {
  sha256: string | null;
  size: number | null;
}

/**
 * The backups in the bucket, newest first (by the time in the name): one LIST, plus one GET per manifest of a
 * copy this machine does not know (made by another machine). On request only, never on a timer.
 */
export async function listRemoteBackups(
  bucket: OffsiteBucket,
  known: ReadonlyMap<string, KnownCopy> = new Map(),
): Promise<RemoteBackupDto[]> {
  const objects = await bucket.list();
  const present = new Set(objects.map((o) => o.name));
  const backups: (RemoteBackupDto & { createdAtMs: number; seq: number })[] = [];
  for (const object of objects) {
    const name = backupNameOfObject(object.name);
    if (name === null) {
      continue;
    }
    const encrypted = object.name.endsWith('.age');
    let copy = known.get(object.name) ?? null;
    if ((copy === null || copy.sha256 === null) && present.has(manifestObjectName(name))) {
      const manifest = parseRemoteManifest(await bucket.getSmall(manifestObjectName(name)));
      copy = { sha256: manifest?.sha256 ?? null, size: manifest?.size ?? null };
    }
    const parsed = parseBackupName(name);
    backups.push({
      name,
      size: copy?.size ?? (encrypted ? null : object.size),
      encrypted,
      sha256: copy?.sha256 ?? null,
      uploaded_at: Math.floor(object.lastModifiedMs / 1000),
      object_size: object.size,
      createdAtMs: parsed?.createdAtMs ?? object.lastModifiedMs,
      seq: parsed?.seq ?? 0,
    });
  }
  backups.sort((a, b) => b.createdAtMs - a.createdAtMs || b.seq - a.seq || (a.name < b.name ? 1 : -1));
  return backups.map(({ createdAtMs: _c, seq: _s, ...rest }) => rest);
}

/** `latest`: the newest copy that is a backup of the database (never a safety copy); else the name itself. */
export function resolveRemoteName(requested: string, backups: readonly RemoteBackupDto[]): string | null {
  if (requested === 'latest') {
    return backups.find((b) => !b.name.startsWith(SAFETY_PREFIX))?.name ?? null;
  }
  return backups.some((b) => b.name === requested) ? requested : null;
}
