import { ExecutionContext, HttpException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { AuthUser } from '../auth-user';
import { REQUIRED_ROLE } from '../decorators';
import type { Role } from '../user.entity';
import { RolesGuard } from './roles.guard';

function contextFor(required: Role | undefined, user: Partial<AuthUser> | undefined): ExecutionContext {
  const handler = () => undefined;
  if (required !== undefined) {
    Reflect.defineMetadata(REQUIRED_ROLE, required, handler);
  }
  return {
    getHandler: () => handler,
    getClass: () => class {},
    switchToHttp: () => ({ getRequest: () => ({ user }) }),
  } as unknown as ExecutionContext;
}

function outcome(required: Role | undefined, role: Role | undefined): number | 'allowed' {
  try {
    new RolesGuard(new Reflector()).canActivate(contextFor(required, role ? { role, username: 'u' } : undefined));
    return 'allowed';
  } catch (error) {
    return (error as HttpException).getStatus();
  }
}

describe(RolesGuard.name, () => {
  it.each<[Role | undefined, Role | undefined, number | 'allowed']>([
    [undefined, 'viewer', 'allowed'],
    ['viewer', 'viewer', 'allowed'],
    ['viewer', 'admin', 'allowed'],
    ['operator', 'viewer', 403],
    ['operator', 'operator', 'allowed'],
    ['operator', 'admin', 'allowed'],
    ['admin', 'viewer', 403],
    ['admin', 'operator', 403],
    ['admin', 'admin', 'allowed'],
    ['admin', undefined, 401],
  ])('requires %s, caller %s → %s', (required, role, expected) => {
    expect(outcome(required, role)).toBe(expected);
  });

  it('should say which role is required', () => {
    try {
      new RolesGuard(new Reflector()).canActivate(contextFor('admin', { role: 'operator' }));
      throw new Error('allowed');
    } catch (error) {
      expect((error as HttpException).getResponse()).toEqual({ error: 'Requires admin role' });
    }
  });
});
