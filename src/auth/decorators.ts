import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import {
  ApiCookieAuth,
  ApiForbiddenResponse,
  ApiSecurity,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { ErrorResponseDto } from '../common/error-response.dto';
import type { AuthUser } from './auth-user';
import type { Role } from './user.entity';

export const IS_PUBLIC = 'mc:is-public';
export const REQUIRED_ROLE = 'mc:required-role';
export const SESSION_COOKIE = 'mc-session';
export const API_KEY_SECURITY = 'api-key';
export const BEARER_SECURITY = 'bearer';

/** Opts a route out of the global authentication guard. */
export const Public = () => SetMetadata(IS_PUBLIC, true);

export const IS_OPTIONAL_AUTH = 'mc:optional-auth';

/**
 * A public route that still learns who calls when credentials come with the request (`@CurrentUser()` is then set,
 * else undefined); wrong or missing credentials are not an error. Health uses it to show details to admins only.
 * No security scheme in the OpenAPI document: Swagger UI would draw a lock on a route anyone may call.
 */
export const OptionalAuth = () => applyDecorators(SetMetadata(IS_PUBLIC, true), SetMetadata(IS_OPTIONAL_AUTH, true));

/** The lowest role that may call the route (viewer < operator < admin), with its Swagger notes. */
export function Roles(role: Role) {
  return applyDecorators(
    SetMetadata(REQUIRED_ROLE, role),
    Authenticated(),
    ApiForbiddenResponse({ description: `Requires the ${role} role`, type: ErrorResponseDto }),
  );
}

/** Any signed-in identity; documents the cookie and API-key schemes and the 401. */
export function Authenticated() {
  return applyDecorators(
    ApiCookieAuth(SESSION_COOKIE),
    ApiSecurity(API_KEY_SECURITY),
    ApiSecurity(BEARER_SECURITY),
    ApiUnauthorizedResponse({ description: 'Authentication required', type: ErrorResponseDto }),
  );
}

/** Every backup, scheduler, settings, audit and user route. */
export const AdminOnly = () => Roles('admin');

/** Documents the shared backups rate limit (429 with Retry-After). */
export const ApiRateLimited = () =>
  ApiTooManyRequestsResponse({
    description: 'Rate limit exceeded; see the Retry-After header',
    type: ErrorResponseDto,
    headers: { 'Retry-After': { description: 'Seconds to wait', schema: { type: 'integer' } } },
  });

export const CurrentUser = createParamDecorator((_data: unknown, context: ExecutionContext): AuthUser => {
  return context.switchToHttp().getRequest<Request & { user: AuthUser }>().user;
});
