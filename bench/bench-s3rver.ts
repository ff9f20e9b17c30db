import { type ChildProcess, spawn } from 'node:child_process';

export const BENCH_BUCKET = 'mc-bench';

/** s3rver in a child process serving BENCH_BUCKET on loopback: its CPU is not the measured process's. */
export async function startS3rver(dir: string): Promise<{ port: number; child: ChildProcess }> {
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const script = `
    const S3rver = require(${JSON.stringify(require.resolve('s3rver'))});
    new S3rver({ port: 0, address: '127.0.0.1', directory: ${JSON.stringify(dir)}, silent: true,
      allowMismatchedSignatures: true, configureBuckets: [{ name: ${JSON.stringify(BENCH_BUCKET)} }] })
      .run().then(({ port }) => process.send({ port }));`;
  // s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 only offers through its legacy provider:
  // without it any listing past 1,000 keys (an hour of replication) fails with HTTP 500.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', script], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code})`)));
  });
  return { port, child };
}
