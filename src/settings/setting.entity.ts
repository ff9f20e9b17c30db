import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A stored override of a registry default; keys without a row read as their default. */
@Entity('settings')
export class SettingEntity {
  @PrimaryColumn({ type: 'text' })
  key: string;

  @Column({ type: 'text' })
  value: string;

  @Column({ name: 'updated_by', type: 'text', nullable: true })
  updatedBy: string | null;

  @Column({ name: 'updated_at', type: 'integer' })
  updatedAt: number;
}
