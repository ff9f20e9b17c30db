import { ApiProperty } from '@nestjs/swagger';

export class HealthCheckDto {
  /** @example up */
  status: string;
}

export class HealthResponseDto {
  @ApiProperty({ enum: ['ok', 'degraded', 'error'], example: 'ok' })
  status: 'ok' | 'degraded' | 'error';
  @ApiProperty({ example: { database: { status: 'up' } } })
  checks: Record<string, HealthCheckDto>;
}
