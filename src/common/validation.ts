import { ValidationPipe } from '@nestjs/common';
import type { ValidationError } from 'class-validator';
import { InputError } from './api-error';

/**
 * The messages of a failed body, one per problem. A field that is missing (or null) gets exactly one,
 * "`name` is required", instead of every rule it would also break ("must be a string", "must be shorter than …").
 */
export function validationMessages(errors: ValidationError[], prefix = ''): string[] {
  const messages: string[] = [];
  for (const error of errors) {
    const field = `${prefix}${error.property}`;
    const constraints = error.constraints ?? {};
    if ((error.value === undefined || error.value === null) && !('whitelistValidation' in constraints)) {
      messages.push(`${field} is required`);
      continue;
    }
    messages.push(...Object.values(constraints));
    messages.push(...validationMessages(error.children ?? [], `${field}.`));
  }
  return messages;
}

/** 400 `{ "error": "<the messages, joined>", "details": [ … ] }`. */
export function validationException(errors: ValidationError[]): InputError {
  const details = validationMessages(errors);
  return new InputError(details.join('; ') || 'Invalid request body', { details });
}

export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: false,
    exceptionFactory: validationException,
  });
}
