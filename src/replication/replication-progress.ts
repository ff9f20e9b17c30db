import { Injectable } from '@nestjs/common';

/** What health and metrics read of replication, synchronously and without a bucket request. */
export interface ReplicationProgressView {
  enabled: boolean;
  status: 'off' | 'starting' | 'streaming' | 'catching_up' | 'failed';
  lagMs: number;
  pendingBytes: number;
  generationsTotal: number;
  failuresTotal: number;
}

const OFF: ReplicationProgressView = {
  enabled: false,
  status: 'off',
  lagMs: 0,
  pendingBytes: 0,
  generationsTotal: 0,
  failuresTotal: 0,
};

/**
 * The seam between replication and the health/metrics modules (as RemoteCopies is for off-site): replication
 * attaches a reader here; without it (replication off, or a CLI process) everything reads as `off`.
 */
@Injectable()
export class ReplicationProgress {
  private reader: (() => ReplicationProgressView) | null = null;

  attach(reader: () => ReplicationProgressView): void {
    this.reader = reader;
  }

  read(): ReplicationProgressView {
    return this.reader?.() ?? OFF;
  }
}
