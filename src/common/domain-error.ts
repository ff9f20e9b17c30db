/**
 * An expected outcome of the storage and domain layers ("no such backup"), free of HTTP: the exception filter maps
 * `kind` to a status, the CLI prints the message. The message must be safe to show (no path, no raw error).
 */
export abstract class DomainError extends Error {
  abstract readonly kind: 'not_found' | 'invalid' | 'conflict';
}

export const DOMAIN_ERROR_STATUS: Record<DomainError['kind'], number> = {
  not_found: 404,
  invalid: 400,
  conflict: 409,
};
