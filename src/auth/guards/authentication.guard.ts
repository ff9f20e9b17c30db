import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { AppConfig } from '../../config/app-config';
import type { Request } from 'express';
import { presentedApiKey } from '../strategies/api-key.strategy';
import { unauthenticated } from '../unauthenticated';
import type { AuthUser } from '../auth-user';
import { IS_OPTIONAL_AUTH, IS_PUBLIC } from '../decorators';
import { presentedSessionToken } from '../session-cookie';

/** Whether the request carries the API key or a session cookie, the only two things the strategies look at. */
function presentsCredentials(req: Request): boolean {
  return presentedApiKey(req) !== undefined || presentedSessionToken(req) !== undefined;
}

/** Global: every route needs a session cookie or the API key unless it is marked @Public(). */
@Injectable()
export class AuthenticationGuard extends AuthGuard(['api-key', 'session']) {
  constructor(
    private readonly reflector: Reflector,
    private readonly config: AppConfig,
  ) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_OPTIONAL_AUTH, targets)) {
      // Who calls, if anyone says so; never a refusal (handleRequest lets a missing user through here). A call that
      // presents neither credential is anonymous without asking passport, whose per-request objects are most of what
      // a monitor's anonymous health check allocates (and they outlive minor collections).
      if (presentsCredentials(context.switchToHttp().getRequest<Request>())) {
        await (super.canActivate(context) as Promise<boolean>);
      }
      return true;
    }
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) {
      return true;
    }
    return super.canActivate(context) as Promise<boolean>;
  }

  override handleRequest<TUser = AuthUser>(
    error: unknown,
    user: TUser | false,
    _info?: unknown,
    context?: ExecutionContext,
  ): TUser {
    if (
      context &&
      this.reflector.getAllAndOverride<boolean>(IS_OPTIONAL_AUTH, [context.getHandler(), context.getClass()])
    ) {
      return (error || !user ? undefined : user) as TUser;
    }
    if (error || !user) {
      throw unauthenticated(context, this.config);
    }
    return user;
  }
}
