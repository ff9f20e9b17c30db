/**
 * `npm run bench -- --preemption [--seconds <n>]`: how long one read() or write() of background I/O keeps a thread of
 * the service waiting for a core. Never run by CI.
 *
 * Why it matters: a kernel built with PREEMPT_NONE (common on servers and VMs; `uname -v` does not say, the kernel
 * config does) never preempts a thread while it is inside a system call. A nice 19 thread that asks for 8 MiB in one
 * read() copies all of it before the scheduler can hand its core to the service's event loop, nice value or not. In
 * user space the same thread is preempted at once. So the size of each background read and write is a latency knob.
 *
 * How: two processes at nice 19 (one per core on the 2-core reference machine) loop over one kind of work; this
 * process, at the service's priority, sleeps 1 ms with Atomics.wait (a futex, like a thread parked on an event) and
 * records how late it wakes. The same probe runs with no load, with a user-space spin, and with reads and writes of
 * each size, one after the other, `--seconds` each (default 8).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BACKGROUND_READ_BYTES, BACKGROUND_WRITE_BYTES } from '../src/common/io-chunk';
import { type BenchOptions, fixed, markdownTable, MIB, percentile, progress, sleep } from './bench-util';

const FILE_BYTES = 512 * MIB;

interface Load {
  label: string;
  kind: 'none' | 'spin' | 'read' | 'write';
  chunk: number;
}

/** The load, as a program of its own: node -e, so that nothing of the bench's process runs in it. */
const LOAD_PROGRAM = `
const fs = require('node:fs');
const os = require('node:os');
const [kind, chunkText, file, fileBytesText] = process.argv.slice(1);
const chunk = Number(chunkText);
const fileBytes = Number(fileBytesText);
os.setPriority(19);
const buffer = Buffer.alloc(chunk, 7);
if (kind === 'spin') {
  let x = 0;
  for (;;) x++;
}
if (kind === 'read') {
  const fd = fs.openSync(file, 'w+');
  for (let at = 0; at < fileBytes; at += buffer.length) fs.writeSync(fd, buffer, 0, buffer.length, at);
  process.send?.('ready');
  for (;;) for (let at = 0; at < fileBytes; at += chunk) fs.readSync(fd, buffer, 0, chunk, at);
}
if (kind === 'write') {
  process.send?.('ready');
  for (;;) {
    const fd = fs.openSync(file, 'w');
    for (let at = 0; at < fileBytes; at += chunk) fs.writeSync(fd, buffer, 0, chunk, at);
    fs.closeSync(fd);
    fs.rmSync(file);
  }
}
`;

function loads(): Load[] {
  const sizes = [...new Set([8 * MIB, MIB, BACKGROUND_READ_BYTES, BACKGROUND_WRITE_BYTES])].sort((a, b) => b - a);
  return [
    { label: 'none', kind: 'none', chunk: 0 },
    { label: 'user-space spin', kind: 'spin', chunk: 0 },
    ...sizes.map((chunk): Load => ({ label: `read() of ${chunk / 1024} KiB`, kind: 'read', chunk })),
    ...sizes.map((chunk): Load => ({ label: `write() of ${chunk / 1024} KiB`, kind: 'write', chunk })),
  ];
}

async function startLoad(load: Load, dir: string, index: number): Promise<ChildProcess> {
  const file = path.join(dir, `load-${index}.bin`);
  const child = spawn(process.execPath, ['-e', LOAD_PROGRAM, load.kind, String(load.chunk), file, String(FILE_BYTES)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  if (load.kind === 'read' || load.kind === 'write') {
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`load process exited with ${code}`)));
    });
  }
  return child;
}

/** Lateness of 1 ms sleeps, in ms, for `seconds`. */
function probe(seconds: number): number[] {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const late: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const started = performance.now();
    Atomics.wait(cell, 0, 0, 1);
    late.push(performance.now() - started - 1);
  }
  return late;
}

export async function runPreemptionBench(options: BenchOptions): Promise<number> {
  const seconds = options.seconds;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mc-preemption-'));
  const rows: string[][] = [];
  try {
    for (const load of loads()) {
      progress(`${load.label}: ${seconds} s`);
      const children =
        load.kind === 'none' ? [] : await Promise.all([0, 1].map((index) => startLoad(load, dir, index)));
      await sleep(300);
      const late = probe(seconds);
      for (const child of children) {
        child.kill('SIGKILL');
      }
      await sleep(300);
      rows.push([
        load.label,
        fixed(percentile(late, 50), 2),
        fixed(percentile(late, 99), 2),
        fixed(percentile(late, 99.9), 2),
        fixed(Math.max(...late), 1),
        String(late.length),
      ]);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const kernel = fs.existsSync('/proc/config.gz')
    ? 'see /proc/config.gz for CONFIG_PREEMPT_*'
    : 'kernel config not readable';
  process.stdout.write(
    [
      `Wake-up lateness of a 1 ms sleep at the service's priority, beside two nice 19 processes (${os.availableParallelism()} cores; ${kernel}; Linux ${os.release()})`,
      '',
      markdownTable(['beside', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'samples'], rows),
      '',
      `The service's background threads read ${BACKGROUND_READ_BYTES / 1024} KiB and write ${BACKGROUND_WRITE_BYTES / 1024} KiB per call (src/common/io-chunk.ts).`,
      '',
    ].join('\n'),
  );
  return 0;
}
