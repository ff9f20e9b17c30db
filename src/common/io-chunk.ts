/**
 * How much background work (hashing, byte copies, uploads, downloads) asks of the kernel in one read() or write().
 *
 * Many servers and VMs run a kernel built with PREEMPT_NONE, which never preempts a thread inside a system call: a
 * thread that reads 8 MiB in one call holds its core until the last byte is copied, whatever its nice value, and a
 * request that arrives meanwhile waits for it. `npm run bench -- --preemption` measures how late a thread at the
 * service's priority wakes from a 1 ms sleep beside two nice 19 processes looping over one size of call. On the 2-core
 * reference VM (2026-12-04), p99 / max:
 * - reads: 8 MiB 1.18 / 4.5 ms (a C probe the same morning: 6.3 / 32 ms), 1 MiB 0.32 / 32.5, 256 KiB 0.19 / 21.6;
 * - writes into new page-cache pages: 8 MiB 26.3 / 81.8 ms, 1 MiB 9.9 / 33.7, 256 KiB 0.66 / 22.4, 64 KiB 0.29 / 4.1;
 * - no load at all 0.24 / 3.9 ms; a user-space spin at nice 19 0.13 / 4.3 ms (preempted at once).
 * Smaller calls cost a few more system calls (16,384 per GiB at 64 KiB, well under 0.1 s) and nothing else.
 *
 * No imports: the snapshot child (sqlite/snapshot.child.ts) loads it.
 */
export const BACKGROUND_READ_BYTES = 256 * 1024;
export const BACKGROUND_WRITE_BYTES = 64 * 1024;
