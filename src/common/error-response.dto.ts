export class ErrorResponseDto {
  /** What went wrong, in words; never a stack or a path. */
  error: string;
  /** Validation messages, one per problem, when the body failed validation. */
  details?: string[];
  /** With a 429: the seconds to wait before trying again, as in the Retry-After header. */
  retry_after_seconds?: number;
}
