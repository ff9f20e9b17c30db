import { ExecutionContext, HttpStatus } from '@nestjs/common';
import type { Request, Response } from 'express';
import { ApiError } from '../common/api-error';
import type { AppConfig } from '../config/app-config';
import { clearSessionCookie, presentedSessionToken } from './session-cookie';
import { presentedApiKey } from './strategies/api-key.strategy';

/** Why a request that sent credentials was refused, beside the contract's fixed `error`. */
export const UNAUTHENTICATED_REASONS = {
  invalid_api_key: 'Invalid API key',
  session_expired: 'Session expired: log in again',
} as const;

/**
 * The 401 for a request no credential authenticated. The contract fixes `error` for every 401, so the reason goes
 * beside it: a caller that sent credentials learns which ones failed, and a browser is told to drop a session
 * cookie the server no longer honours (else it keeps sending it, and keeps being refused, until it expires).
 */
export function unauthenticated(
  context: ExecutionContext | undefined,
  config: Pick<AppConfig, 'cookieSecure'>,
  /** What a Bearer token may be on this route, for the message. */
  keyName = 'API key',
): ApiError {
  const http = context?.switchToHttp();
  const req = http?.getRequest<Request>();
  if (http === undefined || req === undefined) {
    return new ApiError(HttpStatus.UNAUTHORIZED, 'Authentication required');
  }
  const sentCookie = presentedSessionToken(req) !== undefined;
  if (sentCookie) {
    clearSessionCookie(http.getResponse<Response>(), config);
  }
  const reason = presentedApiKey(req) !== undefined ? 'invalid_api_key' : sentCookie ? 'session_expired' : undefined;
  if (reason === undefined) {
    return new ApiError(HttpStatus.UNAUTHORIZED, 'Authentication required');
  }
  return new ApiError(HttpStatus.UNAUTHORIZED, 'Authentication required', {
    reason,
    message: reason === 'invalid_api_key' ? `Invalid ${keyName}` : UNAUTHENTICATED_REASONS[reason],
  });
}
