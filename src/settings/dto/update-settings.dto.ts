import { ApiProperty } from '@nestjs/swagger';
import { IsObject } from 'class-validator';

export class UpdateSettingsDto {
  /**
   * Keys to change and their new values. Each value is checked against its key's rule in the service, since
   * the rule differs per key; an unknown key or a bad value refuses the whole request.
   */
  @ApiProperty({
    type: 'object',
    additionalProperties: { oneOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
    example: { 'general.backup_retention_count': 5 },
  })
  @IsObject()
  settings: Record<string, string | number | boolean>;
}

export class UpdateSettingsResponseDto {
  /** Every key the request stored, in request order. */
  @ApiProperty({ example: ['general.backup_retention_count'] })
  updated: string[];

  @ApiProperty({ example: 1 })
  count: number;
}
