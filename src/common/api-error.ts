import { HttpException, HttpStatus } from '@nestjs/common';

/**
 * An HTTP error whose body is exactly `{ error, ...extra }`: what the contract promises every client. A 429 with a
 * Retry-After header also carries `retry_after_seconds` in its body, the same wait, for clients that read only JSON.
 */
export class ApiError extends HttpException {
  constructor(
    status: HttpStatus,
    error: string,
    extra: Record<string, unknown> = {},
    /** Response headers that belong to the error, such as Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    const retryAfter = status === HttpStatus.TOO_MANY_REQUESTS ? headers['Retry-After'] : undefined;
    super(
      { ...extra, error, ...(retryAfter === undefined ? {} : { retry_after_seconds: Number(retryAfter) }) },
      status,
    );
  }
}

/**
 * A request refused for what it says (a malformed body, a bad name, an unknown task) before any work was done: it
 * gives back what it spent of the backups rate limit, so a typo does not cost a turn.
 */
export class InputError extends ApiError {
  constructor(message: string, extra: Record<string, unknown> = {}, status: HttpStatus = HttpStatus.BAD_REQUEST) {
    super(status, message, extra);
  }
}
