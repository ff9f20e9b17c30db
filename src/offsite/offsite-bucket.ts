import type { S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import type { OffsiteConfig } from '../config/app-config';

interface Sdk {
  s3: typeof import('@aws-sdk/client-s3');
  storage: typeof import('@aws-sdk/lib-storage');
}
let loaded: Sdk | undefined;

/**
 * The AWS SDK, loaded with the first bucket: it is a large share of the start-up of every process that imports this
 * file (the service, the CLI, every test file), and most of them never talk to a bucket.
 */
function loadSdk(): Sdk {
  /* eslint-disable @typescript-eslint/no-require-imports */
  loaded ??= {
    s3: require('@aws-sdk/client-s3') as Sdk['s3'],
    storage: require('@aws-sdk/lib-storage') as Sdk['storage'],
  };
  /* eslint-enable @typescript-eslint/no-require-imports */
  return loaded;
}

/** S3's limits for a multipart upload: parts of at least 5 MiB, at most 10,000 of them. */
export const MIN_PART_SIZE = 8 * 1024 * 1024;
export const MAX_PARTS = 10_000;
/** Parts in flight at once: memory is about this many parts. */
const QUEUE_SIZE = 4;

export interface RemoteObject {
  /** The key without the configured prefix. */
  name: string;
  size: number;
  lastModifiedMs: number;
}

/** A failed bucket request, described by a code safe to log, audit and answer with (no message, no key). */
export class BucketError extends Error {
  constructor(
    readonly code: string,
    readonly status: number | null,
  ) {
    super(`Bucket request failed: ${code}`);
    this.name = 'BucketError';
  }
}

/** The part size for a body of about `size` bytes: 8 MiB, growing in MiB steps so 10,000 parts always suffice. */
export function partSizeFor(size: number): number {
  const mib = 1024 * 1024;
  return Math.max(MIN_PART_SIZE, Math.ceil(size / (MAX_PARTS - 100) / mib) * mib);
}

/** An SDK or network error as a short code: `PreconditionFailed`, `HTTP 503`, `ECONNRESET`, `TimeoutError` … */
export function describeBucketError(error: unknown): BucketError {
  if (error instanceof BucketError) {
    return error;
  }
  const e = error as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: unknown } } | null;
  const status = typeof e?.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : null;
  const code = typeof e?.code === 'string' && /^[A-Z0-9_]{2,40}$/.test(e.code) ? e.code : null;
  const name = typeof e?.name === 'string' && /^[A-Za-z0-9_]{2,60}$/.test(e.name) ? e.name : null;
  // The SDK names an unparseable 5xx `Unknown`/`UnknownError`, or after the XML itself: say the status instead.
  const described =
    code ?? (name !== null && !/^(Error|Unknown|UnknownError|InternalError)$/.test(name) ? name : null) ?? 'Error';
  return new BucketError(status !== null && described === 'Error' ? `HTTP ${status}` : described, status);
}

function isStatus(error: unknown, status: number, ...names: string[]): boolean {
  const e = describeBucketError(error);
  return e.status === status || names.includes(e.code);
}

/**
 * The only code that talks to the bucket (AWS SDK v3). Checksums only where S3 requires them (R2 and B2 refuse the
 * SDK's default CRC32 headers), path-style addressing with an endpoint, credentials from the SDK's default chain.
 * Every key is under the configured prefix; callers pass names relative to it.
 */
export class OffsiteBucket {
  private readonly sdk: Sdk;
  private readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;

  constructor(config: OffsiteConfig, requestTimeoutMs: number) {
    // The SDK's documented switch for its "releases after January 2027 need Node 22" warning, printed once per
    // process on the first client: this build pins 3.1169.0 (which supports Node 20) on purpose. A write, not a
    // read of configuration: the SDK offers no constructor option for it.
    // eslint-disable-next-line no-restricted-properties
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.sdk = loadSdk();
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.client = new this.sdk.s3.S3Client({
      region: config.region,
      ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.forcePathStyle,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      // Without throwOnRequestTimeout the SDK only warns when requestTimeout passes and waits on forever: a stalled
      // bucket would hold the (one-at-a-time) upload worker for good.
      requestHandler: { connectionTimeout: 10_000, requestTimeout: requestTimeoutMs, throwOnRequestTimeout: true },
    });
  }

  destroy(): void {
    this.client.destroy();
  }

  /**
   * Streams `body` into `name` in one pass (a single PUT when it fits one part, else a multipart upload whose part
   * size grows with `expectedSize`), created only if absent (`If-None-Match: *`). A failed or aborted multipart
   * upload is aborted, so no parts are left. Returns `exists` on 412.
   */
  async uploadStream(
    name: string,
    body: Readable,
    options: { expectedSize: number; contentType: string; metadata?: Record<string, string>; signal?: AbortSignal },
  ): Promise<'created' | 'exists'> {
    const abortController = new AbortController();
    const onAbort = (): void => abortController.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const upload = new this.sdk.storage.Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: this.prefix + name,
        Body: body,
        ContentType: options.contentType,
        Metadata: options.metadata,
        IfNoneMatch: '*',
      },
      partSize: partSizeFor(options.expectedSize),
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
      abortController,
    });
    try {
      await upload.done();
      return 'created';
    } catch (error) {
      body.destroy();
      if (isStatus(error, 412, 'PreconditionFailed')) {
        return 'exists';
      }
      throw describeBucketError(error);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A small object (a manifest), created only if absent. */
  async putSmall(name: string, body: Buffer, contentType: string): Promise<'created' | 'exists'> {
    try {
      await this.client.send(
        new this.sdk.s3.PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + name,
          Body: body,
          ContentType: contentType,
          IfNoneMatch: '*',
        }),
      );
      return 'created';
    } catch (error) {
      if (isStatus(error, 412, 'PreconditionFailed')) {
        return 'exists';
      }
      throw describeBucketError(error);
    }
  }

  /** The object's bytes as a stream, or null when there is no such object. */
  async getStream(name: string, signal?: AbortSignal): Promise<Readable | null> {
    return (await this.getObject(name, signal))?.body ?? null;
  }

  /**
   * The object's bytes as a stream, its user metadata (`x-amz-meta-*`) and its Content-Length when the server
   * sent one, or null when there is no such object.
   */
  async getObject(
    name: string,
    signal?: AbortSignal,
  ): Promise<{ body: Readable; metadata: Record<string, string>; contentLength: number | null } | null> {
    try {
      const response = await this.client.send(
        new this.sdk.s3.GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + name }),
        signal ? { abortSignal: signal } : {},
      );
      if (!(response.Body instanceof Readable)) {
        throw new BucketError('NoBody', null);
      }
      return {
        body: response.Body,
        metadata: response.Metadata ?? {},
        contentLength: typeof response.ContentLength === 'number' ? response.ContentLength : null,
      };
    } catch (error) {
      if (isStatus(error, 404, 'NoSuchKey', 'NotFound')) {
        return null;
      }
      throw describeBucketError(error);
    }
  }

  async getSmall(name: string, maxBytes = 1024 * 1024): Promise<Buffer | null> {
    const stream = await this.getStream(name);
    if (stream === null) {
      return null;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of stream) {
        total += (chunk as Buffer).length;
        if (total > maxBytes) {
          throw new BucketError('ObjectTooLarge', null);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (error) {
      stream.destroy();
      throw describeBucketError(error);
    }
    return Buffer.concat(chunks);
  }

  /** Every object under the prefix (one request per 1,000 keys). */
  async list(): Promise<RemoteObject[]> {
    const objects: RemoteObject[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new this.sdk.s3.ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }),
        );
        for (const item of page.Contents ?? []) {
          if (item.Key?.startsWith(this.prefix)) {
            objects.push({
              name: item.Key.slice(this.prefix.length),
              size: item.Size ?? 0,
              lastModifiedMs: item.LastModified?.getTime() ?? 0,
            });
          }
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (error) {
      throw describeBucketError(error);
    }
    return objects;
  }

  /** `locked` when the bucket refuses (Object Lock or a policy: AccessDenied); other failures throw. */
  async delete(name: string): Promise<'deleted' | 'locked'> {
    try {
      await this.client.send(new this.sdk.s3.DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + name }));
      return 'deleted';
    } catch (error) {
      if (isStatus(error, 403, 'AccessDenied')) {
        return 'locked';
      }
      throw describeBucketError(error);
    }
  }

  /**
   * Aborts multipart uploads under the prefix that a killed process left behind (their parts are billed but never
   * become an object). One request, at start-up only. A server that cannot list them is left alone.
   */
  async abortStaleUploads(): Promise<number> {
    let aborted = 0;
    const page = await this.client.send(
      new this.sdk.s3.ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix }),
    );
    for (const upload of page.Uploads ?? []) {
      if (upload.Key?.startsWith(this.prefix) && upload.UploadId) {
        await this.client.send(
          new this.sdk.s3.AbortMultipartUploadCommand({
            Bucket: this.bucket,
            Key: upload.Key,
            UploadId: upload.UploadId,
          }),
        );
        aborted++;
      }
    }
    return aborted;
  }
}
