import { CanActivate, ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiError } from '../../common/api-error';
import { AuthUser, hasRole } from '../auth-user';
import { REQUIRED_ROLE } from '../decorators';
import type { Role } from '../user.entity';

/** Global, after authentication: enforces @Roles()/@AdminOnly() from the handler or its class. */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const required = this.reflector.getAllAndOverride<Role | undefined>(REQUIRED_ROLE, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (required === undefined) {
      return true;
    }
    const user = context.switchToHttp().getRequest<{ user?: AuthUser }>().user;
    if (!user) {
      throw new ApiError(HttpStatus.UNAUTHORIZED, 'Authentication required');
    }
    if (!hasRole(user, required)) {
      throw new ApiError(HttpStatus.FORBIDDEN, `Requires ${required} role`);
    }
    return true;
  }
}
