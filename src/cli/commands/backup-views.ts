import { BackupFiles } from '../../backups/backup-files';
import { parseBackupName } from '../../backups/backup-name';
import { BackupsService } from '../../backups/backups.service';
import type { BackupListItemDto } from '../../backups/dto/backup.dto';

/** One row of `backups list`: the API's list item; `other` is the kind of a foreign name read from the folder. */
export type BackupView = Omit<BackupListItemDto, 'kind'> & { kind: string };

export function listThroughService(service: BackupsService): Promise<{ backups: BackupView[]; dir: string }> {
  return service.list();
}

/** Without a database (the case a restore is for), the folder itself is the only record. */
export async function listFromFolder(files: BackupFiles): Promise<{ backups: BackupView[]; dir: string }> {
  const infos = await files.list();
  return {
    backups: infos.map((info) => ({
      name: info.name,
      size: info.size,
      created_at: Math.floor(info.createdAtMs / 1000),
      kind: parseBackupName(info.name)?.kind ?? 'other',
      sha256: null,
      verified_at: null,
      offsite: { status: 'off' as const, uploaded_at: null, error: null, in_bucket: null },
    })),
    dir: files.dir,
  };
}
