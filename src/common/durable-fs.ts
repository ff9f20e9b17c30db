import * as fsp from 'node:fs/promises';

/** Makes a rename, link or unlink in `dir` durable; tolerates filesystems that cannot fsync a folder. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code !== 'EINVAL' && code !== 'EISDIR') {
      throw error;
    }
  } finally {
    await handle.close();
  }
}
