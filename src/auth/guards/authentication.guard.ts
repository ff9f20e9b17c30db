import { ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { ApiError } from '../../common/api-error';
import type { AuthUser } from '../auth-user';
import { IS_PUBLIC } from '../decorators';

/** Global: every route needs a session cookie or the API key unless it is marked @Public(). */
@Injectable()
export class AuthenticationGuard extends AuthGuard(['api-key', 'session']) {
  constructor(private readonly reflector: Reflector) {
    super();
  }

  override canActivate(context: ExecutionContext) {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()]);
    if (isPublic) {
      return true;
    }
    return super.canActivate(context);
  }

  override handleRequest<TUser = AuthUser>(error: unknown, user: TUser | false): TUser {
    if (error || !user) {
      throw new ApiError(HttpStatus.UNAUTHORIZED, 'Authentication required');
    }
    return user;
  }
}
