import { ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import type { Request } from 'express';
import { AuthUser, hasRole } from '../auth/auth-user';
import { secretsEqual } from '../auth/credentials';
import { unauthenticated } from '../auth/unauthenticated';
import { ApiError } from '../common/api-error';
import { AppConfig } from '../config/app-config';

function bearerToken(req: Request): string | undefined {
  const authorization = req.headers.authorization;
  if (typeof authorization !== 'string') {
    return undefined;
  }
  return /^Bearer\s+(.+)$/i.exec(authorization.trim())?.[1];
}

/**
 * /metrics is @Public() to the global guards so that this guard alone decides: `Authorization: Bearer
 * <METRICS_TOKEN>` when METRICS_TOKEN is set (constant-time compare), otherwise the usual cookie or API key
 * of an admin. No or wrong credentials: 401; a signed-in user below admin: 403.
 */
@Injectable()
export class MetricsAccessGuard extends AuthGuard(['api-key', 'session']) {
  constructor(private readonly config: AppConfig) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<Request & { user?: AuthUser }>();
    const token = this.config.metricsToken;
    const presented = bearerToken(req);
    if (token !== undefined && presented !== undefined && secretsEqual(presented, token)) {
      return true;
    }
    await (super.canActivate(context) as Promise<boolean>);
    if (req.user === undefined || !hasRole(req.user, 'admin')) {
      throw new ApiError(HttpStatus.FORBIDDEN, 'Requires admin role');
    }
    return true;
  }

  override handleRequest<TUser = AuthUser>(
    error: unknown,
    user: TUser | false,
    _info?: unknown,
    context?: ExecutionContext,
  ): TUser {
    if (error || !user) {
      throw unauthenticated(context, this.config, 'API key or metrics token');
    }
    return user;
  }
}
