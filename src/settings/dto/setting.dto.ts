import { ApiProperty } from '@nestjs/swagger';

export class SettingDto {
  @ApiProperty({ example: 'general.backup_retention_count' })
  key: string;

  /** Always a string: booleans as `"true"`/`"false"`, numbers in decimal. */
  @ApiProperty({ example: '10' })
  value: string;

  @ApiProperty({ example: 'How many backups to keep (uploads and safety backups are not counted)' })
  description: string;

  @ApiProperty({ example: 'general' })
  category: string;

  /** Who last stored it; null while the default applies. */
  @ApiProperty({ type: String, nullable: true, example: null })
  updated_by: string | null;

  /** Unix seconds of the last store; null while the default applies. */
  @ApiProperty({ type: Number, nullable: true, example: null })
  updated_at: number | null;

  /** True when no value is stored and the built-in default applies. @example true */
  is_default: boolean;
}

export class SettingsResponseDto {
  @ApiProperty({ type: [SettingDto] })
  settings: SettingDto[];
}
