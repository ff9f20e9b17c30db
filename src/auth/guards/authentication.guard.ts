import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { AppConfig } from '../../config/app-config';
import { unauthenticated } from '../unauthenticated';
import type { AuthUser } from '../auth-user';
import { IS_OPTIONAL_AUTH, IS_PUBLIC } from '../decorators';

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
      // Who calls, if anyone says so; never a refusal (handleRequest lets a missing user through here).
      await (super.canActivate(context) as Promise<boolean>);
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
