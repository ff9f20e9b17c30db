import { BackupFiles } from '../../backups/backup-files';
import { BackupsService } from '../../backups/backups.service';
import { AppSession } from '../app-session';
import { formatBytes, formatTable, formatUtc } from '../format';
import { Terminal } from '../terminal';
import { listFromFolder, listThroughService } from './backup-views';
import { Option, SubCommand, CommandRunner } from 'nest-commander';

@SubCommand({ name: 'list', description: 'List backups, newest first (times in UTC)' })
export class ListCommand extends CommandRunner {
  constructor(
    private readonly session: AppSession,
    private readonly files: BackupFiles,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  @Option({ flags: '--json', description: 'print JSON: { backups: [...], dir }' })
  parseJson(): boolean {
    return true;
  }

  async run(_params: string[], options: { json?: boolean } = {}): Promise<void> {
    let listing;
    if (this.session.databaseExists) {
      listing = await this.session.run((app) => listThroughService(app.get(BackupsService)));
    } else {
      this.terminal.err('No database yet: listing the backups folder only (no checksums)');
      listing = await listFromFolder(this.files);
    }
    if (options.json) {
      this.terminal.out(JSON.stringify(listing, null, 2));
      return;
    }
    if (listing.backups.length === 0) {
      this.terminal.out(`No backups in ${listing.dir}`);
      return;
    }
    const rows = listing.backups.map((b) => [
      b.name,
      b.kind,
      formatBytes(b.size),
      formatUtc(b.created_at),
      b.sha256 === null ? '-' : b.sha256.slice(0, 12),
    ]);
    this.terminal.out(formatTable([['NAME', 'KIND', 'SIZE', 'CREATED (UTC)', 'SHA256'], ...rows]));
    this.terminal.out(`\n${listing.backups.length} backup(s) in ${listing.dir}`);
  }
}
