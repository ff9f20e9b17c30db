import { Injectable } from '@nestjs/common';
import { Presets, SingleBar } from 'cli-progress';
import { createInterface } from 'node:readline/promises';
import { formatBytes } from './format';

/** Progress of one long step, in bytes. */
export interface Progress {
  update(done: number): void;
  stop(): void;
}

/** Plain lines at every quarter: readable in a log file or a CI job, where a redrawn bar is noise. */
const PLAIN_STEPS = 4;

/**
 * Everything the commands say goes through here: results on stdout (machine output such as `--json` stays clean),
 * problems on stderr, a redrawn progress bar only on a terminal, and the confirmation prompt.
 */
@Injectable()
export class Terminal {
  get stdoutIsTty(): boolean {
    return process.stdout.isTTY === true;
  }

  /** A person is there to answer a question. */
  get interactive(): boolean {
    return process.stdin.isTTY === true && process.stdout.isTTY === true;
  }

  out(line = ''): void {
    process.stdout.write(`${line}\n`);
  }

  err(line: string): void {
    process.stderr.write(`${line}\n`);
  }

  progress(label: string, total: number): Progress {
    if (this.stdoutIsTty) {
      const bar = new SingleBar(
        {
          stream: process.stdout,
          format: `${label} [{bar}] {percentage}% | {doneText} / {totalText} | ETA {eta_formatted}`,
          hideCursor: true,
          clearOnComplete: false,
        },
        Presets.shades_classic,
      );
      bar.start(Math.max(total, 1), 0, { doneText: formatBytes(0), totalText: formatBytes(total) });
      return {
        update: (done) => bar.update(done, { doneText: formatBytes(done) }),
        stop: () => bar.stop(),
      };
    }
    let reported = 0;
    this.out(`${label}: 0% of ${formatBytes(total)}`);
    return {
      update: (done) => {
        const step = total > 0 ? Math.floor((done / total) * PLAIN_STEPS) : PLAIN_STEPS;
        if (step > reported && step < PLAIN_STEPS) {
          reported = step;
          this.out(`${label}: ${(step * 100) / PLAIN_STEPS}%`);
        }
      },
      stop: () => this.out(`${label}: done`),
    };
  }

  /** Yes only for an explicit `y`/`yes`; anything else, including end of input, is no. */
  async confirm(question: string): Promise<boolean> {
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    try {
      const answer = await rl.question(`${question} [y/N] `);
      return /^(y|yes)$/i.test(answer.trim());
    } catch {
      return false;
    } finally {
      rl.close();
    }
  }
}
