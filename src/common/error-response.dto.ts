export class ErrorResponseDto {
  /** What went wrong, in words; never a stack or a path. */
  error: string;
  /** Validation messages, one per problem, when the body failed validation. */
  details?: string[];
}
