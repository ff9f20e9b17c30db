/**
 * How much background work (hashing, byte copies, uploads, downloads) asks of the kernel in one read() or write().
 *
 * Many servers and VMs run a kernel built with PREEMPT_NONE, which never preempts a thread inside a system call: a
 * thread that reads 8 MiB in one call holds its core until the last byte is copied, whatever its nice value, and a
 * request that arrives meanwhile waits for it. Measured on the 2-core reference VM (`npm run bench -- --preemption`),
 * the service's thread woke from a 1 ms sleep beside two nice 19 processes looping over:
 * - 8 MiB reads: p99 6.3 ms late (max 32 ms); 1 MiB: 0.35 ms; 256 KiB: 0.16 ms, as with no load at all;
 * - 8 MiB writes into new page-cache pages: p99 22 ms (max 99 ms); 1 MiB: 11.8 ms; 256 KiB: 4.1 ms; 64 KiB: 0.29 ms.
 * Smaller calls cost a few more system calls (16,384 per GiB at 64 KiB, well under 0.1 s) and nothing else.
 *
 * No imports: the snapshot child (sqlite/snapshot.child.ts) loads it.
 */
export const BACKGROUND_READ_BYTES = 256 * 1024;
export const BACKGROUND_WRITE_BYTES = 64 * 1024;
