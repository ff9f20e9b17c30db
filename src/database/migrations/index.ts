import { InitialSchema1764000000000 } from './1764000000000-initial-schema';
import { BackupManifests1766000000000 } from './1766000000000-backup-manifests';
import { OffsiteUploads1767000000000 } from './1767000000000-offsite-uploads';

/** Every migration, oldest first. The app runs them at start; `synchronize` is never used. */
export const MIGRATIONS = [InitialSchema1764000000000, BackupManifests1766000000000, OffsiteUploads1767000000000];

/** The schema version of this build: the newest migration's timestamp. Backups newer than this are refused. */
export const SCHEMA_VERSION = 1767000000000;
