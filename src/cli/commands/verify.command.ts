import { CommandRunner, SubCommand } from 'nest-commander';
import { BackupFiles } from '../../backups/backup-files';
import { RecoveryService } from '../../recovery/recovery.service';
import { AppSession } from '../app-session';
import { CLI_ACTOR, CLI_META } from '../cli-actor';
import { CliError, cliBackupName } from '../cli-error';
import { Terminal } from '../terminal';

interface VerifyView {
  ok: boolean;
  integrity: string;
  checksum: string;
  sha256: string | null;
}

@SubCommand({
  name: 'verify',
  arguments: '<name>',
  description:
    'Check a backup like POST /api/backup/verify: full integrity_check and sha256 against its manifest. ' +
    'Exit 0 if sound, 1 if not',
  argsDescription: { name: 'backup file name, e.g. mc-backup-2026-01-01_03-00-00.db' },
})
export class VerifyCommand extends CommandRunner {
  constructor(
    private readonly session: AppSession,
    private readonly files: BackupFiles,
    private readonly terminal: Terminal,
  ) {
    super();
  }

  async run([rawName]: string[]): Promise<void> {
    const name = cliBackupName(rawName);
    if ((await this.files.statBackup(name)) === null) {
      throw new CliError(`No backup named ${name} in ${this.files.dir}`);
    }
    this.terminal.out(`Verifying ${name} (full integrity_check and sha256)…`);
    const result = this.session.databaseExists ? await this.throughService(name) : await this.withoutDatabase(name);
    this.terminal.out(`integrity: ${result.integrity}`);
    this.terminal.out(`checksum:  ${result.checksum}`);
    this.terminal.out(`sha256:    ${result.sha256 ?? '-'}`);
    this.terminal.out(`result:    ${result.ok ? 'ok' : 'FAILED'}`);
    if (!result.ok) {
      throw new CliError(`Backup ${name} failed verification`);
    }
  }

  /** The API's verify itself: same checks, same manifest update, same `backup_verify` audit (actor `cli`). */
  private throughService(name: string): Promise<VerifyView> {
    return this.session.run((app) => app.get(RecoveryService).verify(name, CLI_ACTOR, CLI_META));
  }

  /** No database (the case a restore is for): the same inspection, with no manifest to compare and no audit. */
  private async withoutDatabase(name: string): Promise<VerifyView> {
    this.terminal.err('No database: the checksum cannot be compared with a manifest and nothing is audited');
    const check = await this.files.inspect(name, { integrity: 'full', hash: true });
    const integrity = check.integrity ?? 'unreadable';
    return { ok: check.opened && integrity === 'ok', integrity, checksum: 'unknown', sha256: check.sha256 };
  }
}
