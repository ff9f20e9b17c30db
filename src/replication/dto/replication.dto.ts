import { ApiProperty } from '@nestjs/swagger';

export class ReplicationGapDto {
  /** Start of the span (ISO-8601): the last commit of the generation before. @example 2026-12-01T10:00:00.500Z */
  from: string;
  /** End of the span (ISO-8601): where the next generation becomes restorable. @example 2026-12-01T10:00:04.000Z */
  to: string;
}

export class ReplicationCompactionDto {
  /** Compacted ranges this process stored since it started (each stands for 60 segments). @example 12 */
  ranges_stored: number;
  /** Why the last compaction failed, else null: rebuilds then read the segments themselves (slower, as correct). */
  @ApiProperty({ type: String, nullable: true, example: null })
  last_error: string | null;
}

export class ReplicationStatusDto {
  @ApiProperty({ enum: ['off', 'starting', 'streaming', 'catching_up', 'failed'], example: 'streaming' })
  status: 'off' | 'starting' | 'streaming' | 'catching_up' | 'failed';
  /** The generation being streamed; null while off or before the first snapshot. */
  @ApiProperty({ type: String, nullable: true, example: 'g20261203133500123-a1b2c3d4' })
  generation: string | null;
  /** Age of the oldest commit not yet in the bucket, in ms (0 when nothing waits). @example 0 */
  lag_ms: number;
  /** ISO-8601 time of the last commit (or snapshot) stored in the bucket. */
  @ApiProperty({ type: String, nullable: true, example: '2026-12-03T13:35:01.120Z' })
  last_shipped_at: string | null;
  /** Bytes waiting in the local spool for the bucket. @example 0 */
  pending_bytes: number;
  /** Earliest restorable moment (ISO-8601), from the bucket. */
  @ApiProperty({ type: String, nullable: true, example: '2026-11-26T13:35:00.000Z' })
  restorable_from: string | null;
  /** Latest restorable moment (ISO-8601). */
  @ApiProperty({ type: String, nullable: true, example: '2026-12-03T13:35:01.120Z' })
  restorable_to: string | null;
  /** Spans inside the window that cannot be restored (continuity was lost there). */
  @ApiProperty({ type: [ReplicationGapDto] })
  gaps: ReplicationGapDto[];
  /** Why replication is failing (a short reason), else null. */
  @ApiProperty({ type: String, nullable: true, example: null })
  error: string | null;
  /** Compaction of older segments into ranges, which keeps a point-in-time restore fast. */
  compaction: ReplicationCompactionDto;
}

export class ReplicationSnapshotDto {
  /** The new generation, started from the snapshot just taken (also audited as replication_generation). */
  @ApiProperty({ type: String, nullable: true, example: 'g20261203133500123-a1b2c3d4' })
  generation: string | null;
}
