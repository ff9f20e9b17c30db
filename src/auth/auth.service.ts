import { HttpStatus, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import { OperationLock } from '../common/operation-lock';
import type { RequestMeta } from '../common/request-meta';
import type { AuthUser } from './auth-user';
import { DUMMY_PASSWORD_HASH, verifyPassword } from './credentials';
import { replacePassword } from './passwords';
import { LoginThrottle } from './login-throttle';
import { SessionsService } from './sessions.service';
import { PublicUser, toPublicUser, UsersService } from './users.service';

@Injectable()
export class AuthService {
  constructor(
    private readonly users: UsersService,
    private readonly sessions: SessionsService,
    private readonly loginThrottle: LoginThrottle,
    private readonly audit: AuditService,
    private readonly dataSource: DataSource,
    private readonly lock: OperationLock,
  ) {}

  async login(
    username: string,
    password: string,
    meta: RequestMeta,
  ): Promise<{ user: PublicUser; token: string; expiresAt: number }> {
    // Reserved before the hash, settled after it: parallel attempts cannot all pass a check made before any failed.
    const attempt = await this.loginThrottle.reserve(meta.ip);
    if ('retryAfterSeconds' in attempt) {
      throw LoginThrottle.tooMany(attempt.retryAfterSeconds);
    }
    const { reservation } = attempt;
    let user: Awaited<ReturnType<UsersService['findByUsername']>>;
    let valid: boolean;
    try {
      user = await this.users.findByUsername(username);
      // Hash even for unknown names so the response time does not tell which names exist.
      valid = await verifyPassword(password, user?.passwordHash ?? DUMMY_PASSWORD_HASH);
    } catch (error) {
      // Not an answer about the password: give the slot back.
      reservation.succeeded();
      throw error;
    }
    if (!user || !valid) {
      reservation.failed();
      await this.audit.record({
        action: 'login_failed',
        actor: { id: user?.id ?? null, username: username.slice(0, 64) },
        targetType: 'user',
        targetId: user ? String(user.id) : undefined,
        detail: { reason: user ? 'wrong_password' : 'unknown_user' },
        meta,
      });
      throw new ApiError(HttpStatus.UNAUTHORIZED, 'Invalid credentials');
    }
    reservation.succeeded();
    const session = await this.sessions.create(user, meta);
    if (session === null) {
      // The password was changed while it was being checked: the one given is no longer this user's. Not a guess,
      // so it does not count toward the limit.
      await this.audit.record({
        action: 'login_failed',
        actor: user,
        targetType: 'user',
        targetId: String(user.id),
        detail: { reason: 'password_changed' },
        meta,
      });
      throw new ApiError(HttpStatus.UNAUTHORIZED, 'Invalid credentials');
    }
    const { token, expiresAt } = session;
    await this.audit.record({
      action: 'login',
      actor: user,
      targetType: 'user',
      targetId: String(user.id),
      meta,
    });
    return { user: toPublicUser(user), token, expiresAt };
  }

  async logout(user: AuthUser, meta: RequestMeta): Promise<void> {
    if (user.sessionId !== undefined) {
      await this.sessions.revoke(user.sessionId);
    }
    await this.audit.record({ action: 'logout', actor: user, detail: { via: user.via }, meta });
  }

  /**
   * The caller's own password. A wrong current password counts as a failed login from this address (so this route
   * cannot be used to guess passwords faster than the login route), is audited, and answers 400. On success every
   * other session of the user ends; the one used for the change stays signed in.
   */
  async changeOwnPassword(
    user: AuthUser,
    currentPassword: string,
    newPassword: string,
    meta: RequestMeta,
  ): Promise<{ sessionsEnded: number }> {
    if (user.id === null) {
      throw new ApiError(
        HttpStatus.BAD_REQUEST,
        'The API key is not a user and has no password: log in as a user, or reset a password with ' +
          'POST /api/auth/users/:id/password',
      );
    }
    // A wrong current password counts as a failed login: the same reservation before the hash.
    const attempt = await this.loginThrottle.reserve(meta.ip);
    if ('retryAfterSeconds' in attempt) {
      throw LoginThrottle.tooMany(attempt.retryAfterSeconds);
    }
    const stored = await this.users.findById(user.id);
    const valid = stored !== null && (await verifyPassword(currentPassword, stored.passwordHash));
    if (valid) {
      attempt.reservation.succeeded();
    } else {
      attempt.reservation.failed();
      await this.audit.record({
        action: 'password_change_failed',
        actor: user,
        targetType: 'user',
        targetId: String(user.id),
        detail: { reason: 'wrong_current_password' },
        meta,
      });
      throw new ApiError(HttpStatus.BAD_REQUEST, 'current_password is not your current password');
    }
    const sessionsEnded = await replacePassword(this.dataSource.manager, user.id, newPassword, user.sessionId, () =>
      this.lock.restoreFinished(),
    );
    await this.audit.record({
      action: 'password_change',
      actor: user,
      targetType: 'user',
      targetId: String(user.id),
      detail: { username: user.username, sessions_ended: sessionsEnded },
      meta,
    });
    return { sessionsEnded };
  }
}
