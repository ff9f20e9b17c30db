import { ApiProperty } from '@nestjs/swagger';

export class HealthCheckDto {
  /** `unknown`: the check could not run (it says nothing of what it checks); the whole answer is then `degraded`. */
  @ApiProperty({ enum: ['up', 'degraded', 'down', 'unknown'], example: 'up' })
  status: 'up' | 'degraded' | 'down' | 'unknown';
  /** Why the check is not up, when it is not. */
  message?: string;
  [detail: string]: unknown;
}

export class HealthResponseDto {
  @ApiProperty({ enum: ['ok', 'degraded', 'error'], example: 'ok' })
  status: 'ok' | 'degraded' | 'error';
  @ApiProperty({
    description:
      'database (503 when down, its scheduled quick_check failed or its -wal/-shm was deleted; degraded when the ' +
      'live schema is not this application’s; `unknown` with a `reason` when the database answers but its ' +
      'scheduled check could not run, retried within a minute), disk (free space beside the backups), ' +
      'last_backup (degraded after a failed attempt until the next success, or when too old with auto-backup ' +
      'on). Anonymous callers and non-admins get `{ status }` per check; admins also the details shown here.',
    example: {
      database: { status: 'up', schema_version: 1766000000000, quick_check: 'ok', quick_check_at: 1767236000 },
      disk: { status: 'up', free_bytes: 52_000_000_000, required_bytes: 2_097_152, last_backup_size_bytes: 1_048_576 },
      last_backup: {
        status: 'up',
        auto_backup: true,
        last_success_at: 1767236400,
        age_seconds: 3600,
        max_age_seconds: 93600,
        last_failure_at: null,
      },
    },
  })
  checks: Record<string, HealthCheckDto>;
}
