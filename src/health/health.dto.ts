import { ApiProperty } from '@nestjs/swagger';

export class HealthCheckDto {
  @ApiProperty({ enum: ['up', 'degraded', 'down'], example: 'up' })
  status: 'up' | 'degraded' | 'down';
  /** Why the check is not up, when it is not. */
  message?: string;
  [detail: string]: unknown;
}

export class HealthResponseDto {
  @ApiProperty({ enum: ['ok', 'degraded', 'error'], example: 'ok' })
  status: 'ok' | 'degraded' | 'error';
  @ApiProperty({
    description:
      'database (503 when down), disk (free space beside the backups), last_backup (age when auto-backup is on)',
    example: {
      database: { status: 'up' },
      disk: { status: 'up', free_bytes: 52_000_000_000, required_bytes: 2_097_152, last_backup_size_bytes: 1_048_576 },
      last_backup: {
        status: 'up',
        auto_backup: true,
        last_success_at: 1767236400,
        age_seconds: 3600,
        max_age_seconds: 93600,
      },
    },
  })
  checks: Record<string, HealthCheckDto>;
}
