import { BackupFiles } from '../../backups/backup-files';
import { parseBackupName } from '../../backups/backup-name';
import { BackupsService } from '../../backups/backups.service';

/** One row of `backups list`; `kind`, `sha256` and `verified_at` are read when the service provides them. */
export interface BackupView {
  name: string;
  size: number;
  created_at: number;
  kind: string;
  sha256: string | null;
  verified_at: number | null;
}

type ListedItem = { name: string; size: number; created_at: number } & {
  kind?: unknown;
  sha256?: unknown;
  verified_at?: unknown;
};

export function toView(item: ListedItem): BackupView {
  return {
    name: item.name,
    size: item.size,
    created_at: item.created_at,
    kind: typeof item.kind === 'string' ? item.kind : (parseBackupName(item.name)?.kind ?? 'other'),
    sha256: typeof item.sha256 === 'string' ? item.sha256 : null,
    verified_at: typeof item.verified_at === 'number' ? item.verified_at : null,
  };
}

export async function listThroughService(service: BackupsService): Promise<{ backups: BackupView[]; dir: string }> {
  const listing = await service.list();
  return { backups: listing.backups.map((item) => toView(item as ListedItem)), dir: listing.dir };
}

/** Without a database (the case a restore is for), the folder itself is the only record. */
export async function listFromFolder(files: BackupFiles): Promise<{ backups: BackupView[]; dir: string }> {
  const infos = await files.list();
  return {
    backups: infos.map((info) =>
      toView({ name: info.name, size: info.size, created_at: Math.floor(info.createdAtMs / 1000) }),
    ),
    dir: files.dir,
  };
}
