import { parseBackupName, SAFETY_PREFIX } from '../backups/backup-name';
import { ageOverhead } from './age-crypto';
import type { RemoteBackupDto } from './dto/offsite.dto';
import type { OffsiteBucket, RemoteObject } from './offsite-bucket';
import { backupNameOfObject, manifestObjectName, parseRemoteManifest, type RemoteManifest } from './remote-objects';

/**
 * A name this far past the clock is "in the future": made while a clock was ahead. Such a copy is real but
 * never counts as newer than one named before now (small skews between machines are not suspect).
 */
export const FUTURE_SLACK_MS = 5 * 60 * 1000;
/** Room for the age header (a stanza per recipient): more than any sane list of recipients needs. */
const AGE_HEADER_MAX = 64 * 1024;

/** What this machine already knows of an object it uploaded, so neither listing nor retention needs its manifest. */
export interface KnownCopy {
  /** The backup's name (the object's key without prefix and extension). */
  name: string;
  sha256: string | null;
  size: number | null;
}

/** A backup object in the bucket, as one LIST describes it (no manifest read). */
export interface RemoteEntry {
  name: string;
  objectName: string;
  objectSize: number;
  storedAtMs: number;
  createdAtMs: number;
  seq: number;
  encrypted: boolean;
  /** Its manifest key exists (not that it is valid: see {@link ManifestReader}). */
  hasManifest: boolean;
  /** Named later than the clock (plus {@link FUTURE_SLACK_MS}). */
  future: boolean;
}

/**
 * The stored object's largest plausible size for a manifest: the plain size, plus age's tags and header when
 * encrypted. A download that goes past it is not the copy the manifest describes, and stops there.
 */
export function maxObjectBytes(manifest: Pick<RemoteManifest, 'size' | 'encrypted'>): number {
  return manifest.encrypted ? manifest.size + ageOverhead(manifest.size) + 16 + AGE_HEADER_MAX : manifest.size;
}

/** The smallest, likewise: a 4-byte object is no copy of a 4 MB backup whatever its manifest says. */
function minObjectBytes(manifest: Pick<RemoteManifest, 'size' | 'encrypted'>): number {
  return manifest.encrypted ? manifest.size + ageOverhead(manifest.size) : manifest.size;
}

/** A manifest that describes this entry: same name, same format, an object of a size it could have. */
export function manifestFits(entry: RemoteEntry, manifest: RemoteManifest | null): manifest is RemoteManifest {
  return (
    manifest !== null &&
    manifest.name === entry.name &&
    manifest.encrypted === entry.encrypted &&
    entry.objectSize >= minObjectBytes(manifest) &&
    entry.objectSize <= maxObjectBytes(manifest)
  );
}

/** Newest first by the time in the name; names in the future after every other (a clock was ahead). */
export function compareEntries(a: RemoteEntry, b: RemoteEntry): number {
  return (
    Number(a.future) - Number(b.future) ||
    b.createdAtMs - a.createdAtMs ||
    b.seq - a.seq ||
    (a.name < b.name ? 1 : a.name > b.name ? -1 : 0)
  );
}

/** The backup objects of one LIST (manifests are not read), newest first as {@link compareEntries} orders them. */
export function entriesOf(objects: readonly RemoteObject[], nowMs: number): RemoteEntry[] {
  const present = new Set(objects.map((o) => o.name));
  const seen = new Set<string>();
  const entries: RemoteEntry[] = [];
  for (const object of objects) {
    const name = backupNameOfObject(object.name);
    if (name === null || seen.has(name)) {
      continue;
    }
    seen.add(name);
    const parsed = parseBackupName(name);
    const createdAtMs = parsed?.createdAtMs ?? object.lastModifiedMs;
    entries.push({
      name,
      objectName: object.name,
      objectSize: object.size,
      storedAtMs: object.lastModifiedMs,
      createdAtMs,
      seq: parsed?.seq ?? 0,
      encrypted: object.name.endsWith('.age'),
      hasManifest: present.has(manifestObjectName(name)),
      future: createdAtMs > nowMs + FUTURE_SLACK_MS,
    });
  }
  return entries.sort(compareEntries);
}

/**
 * Reads manifests on demand, one GET each at most: a copy this machine uploaded (the outbox knows its sha256 and
 * size) needs none, and a manifest already read is remembered, keyed by object and size.
 */
export class ManifestReader {
  constructor(
    private readonly bucket: OffsiteBucket,
    readonly known: ReadonlyMap<string, KnownCopy> = new Map(),
    /** Shared by callers that look at the bucket again and again (a manifest is never overwritten). */
    private readonly cache = new Map<string, RemoteManifest | null>(),
  ) {}

  /** The entry's manifest when it is valid and fits the object, else null (no manifest, garbage, or a lie). */
  async valid(entry: RemoteEntry): Promise<RemoteManifest | null> {
    if (!entry.hasManifest) {
      return null;
    }
    const known = this.known.get(entry.objectName);
    if (known?.sha256 && known.size !== null) {
      const manifest = this.fromKnown(entry, known.sha256, known.size);
      return manifestFits(entry, manifest) ? manifest : null;
    }
    const key = `${entry.objectName}\n${entry.objectSize}\n${entry.storedAtMs}`;
    if (!this.cache.has(key)) {
      const manifest = parseRemoteManifest(await this.bucket.getSmall(manifestObjectName(entry.name)));
      this.cache.set(key, manifestFits(entry, manifest) ? manifest : null);
    }
    return this.cache.get(key) ?? null;
  }

  private fromKnown(entry: RemoteEntry, sha256: string, size: number): RemoteManifest {
    return {
      name: entry.name,
      size,
      sha256,
      // Not needed by any caller of a known copy; the real one is in the outbox row.
      object_sha256: '',
      encrypted: entry.encrypted,
      created_at: Math.floor(entry.createdAtMs / 1000),
      kind: parseBackupName(entry.name)?.kind ?? 'manual',
    };
  }
}

/** The newest copy with a valid manifest, never a safety copy; future-named ones only when nothing else is. */
export async function newestValid(
  entries: readonly RemoteEntry[],
  reader: ManifestReader,
): Promise<{ entry: RemoteEntry; manifest: RemoteManifest } | null> {
  for (const entry of entries) {
    if (entry.name.startsWith(SAFETY_PREFIX) || !entry.hasManifest) {
      continue;
    }
    const manifest = await reader.valid(entry);
    if (manifest !== null) {
      return { entry, manifest };
    }
  }
  return null;
}

export interface RemotePage {
  backups: RemoteBackupDto[];
  /** Backup objects in the bucket, all pages together. */
  total: number;
}

/**
 * The backups in the bucket, newest first (by the time in the name; future-named last): the LIST pages, plus one
 * GET per manifest of a copy on the requested page this machine does not know. On request only, never on a timer.
 */
export async function listRemoteBackups(
  bucket: OffsiteBucket,
  options: { known?: ReadonlyMap<string, KnownCopy>; limit?: number; offset?: number; nowMs: number },
): Promise<RemotePage> {
  const entries = entriesOf(await bucket.list(), options.nowMs);
  const offset = options.offset ?? 0;
  const page = entries.slice(offset, options.limit === undefined ? undefined : offset + options.limit);
  const reader = new ManifestReader(bucket, options.known);
  const backups: RemoteBackupDto[] = [];
  for (const entry of page) {
    const known = options.known?.get(entry.objectName);
    let copy: KnownCopy | null = known?.sha256 ? known : null;
    if (copy === null && entry.hasManifest) {
      const manifest = await reader.valid(entry);
      copy = { name: entry.name, sha256: manifest?.sha256 ?? null, size: manifest?.size ?? null };
    }
    backups.push({
      name: entry.name,
      size: copy?.size ?? (entry.encrypted ? null : entry.objectSize),
      encrypted: entry.encrypted,
      sha256: copy?.sha256 ?? null,
      uploaded_at: Math.floor(entry.storedAtMs / 1000),
      object_size: entry.objectSize,
    });
  }
  return { backups, total: entries.length };
}

/**
 * `latest`: the newest copy with a valid manifest (never a safety copy, never a future-named one over a real
 * one); else the named copy, with its manifest when that is valid (null when it is not). Null when there is no
 * such copy. One LIST pass and as few manifest reads as that takes.
 */
export async function findRemoteCopy(
  bucket: OffsiteBucket,
  requested: string,
  nowMs: number,
): Promise<{ name: string; manifest: RemoteManifest | null } | null> {
  const entries = entriesOf(await bucket.list(), nowMs);
  const reader = new ManifestReader(bucket);
  if (requested === 'latest') {
    const found = await newestValid(entries, reader);
    return found === null ? null : { name: found.entry.name, manifest: found.manifest };
  }
  const entry = entries.find((e) => e.name === requested);
  return entry === undefined ? null : { name: requested, manifest: await reader.valid(entry) };
}
