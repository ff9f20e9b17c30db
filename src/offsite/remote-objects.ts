import { validateBackupName } from '../backups/backup-name';

/**
 * The object layout under the prefix: `<name>.age` (the backup in the age v1 format; `<name>` itself when
 * plaintext is allowed) and `<name>.json`, its manifest.
 */
export interface RemoteManifest {
  name: string;
  /** Bytes of the plain backup. */
  size: number;
  /** Hex sha256 of the plain backup. */
  sha256: string;
  /** Hex sha256 of the stored object's bytes. */
  object_sha256: string;
  encrypted: boolean;
  /** Unix seconds: the time in the backup's name. */
  created_at: number;
  kind: string;
}

export function objectNameFor(name: string, encrypted: boolean): string {
  return encrypted ? `${name}.age` : name;
}

export function manifestObjectName(name: string): string {
  return `${name}.json`;
}

/** The backup name a stored object holds (`x.db.age` or `x.db`), or null for manifests and foreign objects. */
export function backupNameOfObject(objectName: string): string | null {
  const name = objectName.endsWith('.age') ? objectName.slice(0, -'.age'.length) : objectName;
  if (!name.endsWith('.db')) {
    return null;
  }
  const valid = validateBackupName(name);
  return valid.ok ? valid.name : null;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** A manifest read back from the bucket, or null when absent or not one of ours. */
export function parseRemoteManifest(body: Buffer | null): RemoteManifest | null {
  if (body === null) {
    return null;
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  const m = value as Partial<RemoteManifest> | null;
  if (
    m === null ||
    typeof m !== 'object' ||
    typeof m.name !== 'string' ||
    typeof m.size !== 'number' ||
    typeof m.sha256 !== 'string' ||
    !HEX64.test(m.sha256) ||
    typeof m.object_sha256 !== 'string' ||
    !HEX64.test(m.object_sha256) ||
    typeof m.encrypted !== 'boolean'
  ) {
    return null;
  }
  return {
    name: m.name,
    size: m.size,
    sha256: m.sha256,
    object_sha256: m.object_sha256,
    encrypted: m.encrypted,
    created_at: typeof m.created_at === 'number' ? m.created_at : 0,
    kind: typeof m.kind === 'string' ? m.kind : 'manual',
  };
}
