import { HttpException, HttpStatus } from '@nestjs/common';

/** An HTTP error whose body is exactly `{ error, ...extra }`: what the contract promises every client. */
export class ApiError extends HttpException {
  constructor(
    status: HttpStatus,
    error: string,
    extra: Record<string, unknown> = {},
    /** Response headers that belong to the error, such as Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super({ ...extra, error }, status);
  }
}
