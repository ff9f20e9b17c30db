import { CanActivate, ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import { ApiError } from '../../common/api-error';
import type { AuthUser } from '../auth-user';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * True when a browser sent this state-changing request from another site: its Origin (or, lacking it, its
 * Referer) names a host other than the one it was sent to. Requests naming neither are not from a browser
 * form or script (browsers always send Origin on cross-site POSTs), so they pass.
 */
export function isCrossSiteRequest(method: string, headers: IncomingHttpHeaders): boolean {
  if (!STATE_CHANGING.has(method.toUpperCase())) {
    return false;
  }
  const source = headers.origin ?? headers.referer;
  if (source === undefined || source === '') {
    return false;
  }
  const host = headers.host;
  if (typeof host !== 'string' || host === '') {
    return true;
  }
  try {
    return new URL(source).host.toLowerCase() !== host.toLowerCase();
  } catch {
    return true; // "null" origins (sandboxed frames, file://) and garbage are never our own pages.
  }
}

/** Global, after authentication: only cookie-authenticated requests can be forged by another site. */
@Injectable()
export class CsrfGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<{ user?: AuthUser; method: string; headers: IncomingHttpHeaders }>();
    if (req.user?.via === 'session' && isCrossSiteRequest(req.method, req.headers)) {
      throw new ApiError(HttpStatus.FORBIDDEN, 'CSRF origin mismatch');
    }
    return true;
  }
}
