/**
 * Child process of bench/backup.bench.ts: makes small writes over HTTP (`PUT /api/settings` with the API key) to the
 * app under test, or pings `GET /api/health`, and records their latency, so that the HTTP client's own work never
 * runs on the app's event loop.
 * Protocol (IPC): parent sends `start` / `stop`; the child answers `ready` once, then `samples` after each `stop`.
 */
import { LatencyProbe, type LatencySamples, noSamples } from './bench-probes';

export interface HttpWriterStart {
  type: 'start';
  url: string;
  apiKey: string;
  intervalMs: number;
  /** `settings`: PUT /api/settings (a small write); `health`: GET /api/health (what a monitor pings). */
  kind: 'settings' | 'health';
}

export type HttpWriterCommand = HttpWriterStart | { type: 'stop' } | { type: 'exit' };

export type HttpWriterReply = { type: 'ready' } | ({ type: 'samples' } & LatencySamples);

function settingsWriter(start: HttpWriterStart): () => Promise<void> {
  let toggle = false;
  return async () => {
    toggle = !toggle;
    // Retention count 10 <-> 11: a real settings write (read, upsert in a transaction, audit row) that changes
    // nothing for the bench, which never holds more than one backup at a time.
    const response = await fetch(`${start.url}/api/settings`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'x-api-key': start.apiKey },
      body: JSON.stringify({ settings: { 'general.backup_retention_count': toggle ? 11 : 10 } }),
    });
    const text = await response.text();
    if (response.status !== 200) {
      throw new Error(`PUT /api/settings answered ${response.status}: ${text.slice(0, 200)}`);
    }
  };
}

function healthPinger(start: HttpWriterStart): () => Promise<void> {
  return async () => {
    const response = await fetch(`${start.url}/api/health`);
    const text = await response.text();
    if (response.status !== 200) {
      throw new Error(`GET /api/health answered ${response.status}: ${text.slice(0, 200)}`);
    }
  };
}

function send(reply: HttpWriterReply): void {
  process.send?.(reply);
}

if (process.send !== undefined) {
  let probe: LatencyProbe | undefined;
  process.on('message', (command: HttpWriterCommand) => {
    if (command.type === 'start') {
      const operation = command.kind === 'health' ? healthPinger(command) : settingsWriter(command);
      probe = new LatencyProbe(operation, command.intervalMs);
      probe.start();
    } else if (command.type === 'stop') {
      const running = probe;
      probe = undefined;
      void (running ? running.stop() : Promise.resolve(noSamples())).then((result) =>
        send({ type: 'samples', ...result }),
      );
    } else {
      process.disconnect();
    }
  });
  // The bench went away (crashed or was killed): stop writing to an app that is gone.
  process.once('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}
