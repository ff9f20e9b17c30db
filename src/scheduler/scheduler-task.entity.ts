import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Persistent state of a scheduled task, so lastRun/lastResult survive restarts. Times in Unix ms. */
@Entity('scheduler_tasks')
export class SchedulerTaskEntity {
  @PrimaryColumn({ type: 'text' })
  id: string;

  @Column({ name: 'last_run', type: 'integer', nullable: true })
  lastRun: number | null;

  @Column({ name: 'last_success_at', type: 'integer', nullable: true })
  lastSuccessAt: number | null;

  @Column({ name: 'last_result_ok', type: 'boolean', nullable: true })
  lastResultOk: boolean | null;

  @Column({ name: 'last_result_message', type: 'text', nullable: true })
  lastResultMessage: string | null;

  @Column({ name: 'last_result_at', type: 'integer', nullable: true })
  lastResultAt: number | null;

  @Column({ type: 'boolean', default: false })
  running: boolean;
}
