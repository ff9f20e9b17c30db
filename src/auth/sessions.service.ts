import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LessThanOrEqual, Repository } from 'typeorm';
import { Clock } from '../common/clock';
import { OperationLock } from '../common/operation-lock';
import { SQLITE_HANDLE, type SqliteHandle } from '../database/sqlite-handle';
import type { RequestMeta } from '../common/request-meta';
import type { AuthUser } from './auth-user';
import { hashSessionToken, newSessionToken } from './credentials';
import { SessionEntity } from './session.entity';
import { UserEntity } from './user.entity';

export const SESSION_TTL_SECONDS = 7 * 24 * 60 * 60;

@Injectable()
export class SessionsService {
  constructor(
    @InjectRepository(SessionEntity) private readonly sessions: Repository<SessionEntity>,
    @InjectRepository(UserEntity) private readonly users: Repository<UserEntity>,
    private readonly clock: Clock,
    @Inject(SQLITE_HANDLE) private readonly db: SqliteHandle,
    private readonly lock: OperationLock,
  ) {}

  /**
   * Opens a session for `user`, whose password was checked against `user.passwordHash`; returns the cookie token
   * (only its hash is stored), or null when that hash is no longer the user's: the password was changed or reset
   * while it was being checked. Expired rows are swept on the way.
   *
   * The check and the insert are one statement. SQLite runs a write statement under the database's write lock
   * from its first read, and a password change replaces the hash and deletes the user's sessions in one
   * transaction under the same lock (passwords.ts; the CLI's from another process too). So either this session
   * is stored first and the change deletes it, or the change commits first and nothing is stored. Checking first
   * and inserting after, or comparing a generation read earlier, would leave a gap between the two.
   */
  async create(user: UserEntity, meta: RequestMeta): Promise<{ token: string; expiresAt: number } | null> {
    await this.removeExpired();
    const token = newSessionToken();
    const now = this.clock.nowSeconds();
    const expiresAt = now + SESSION_TTL_SECONDS;
    // A login that passed the availability guard just before a restore began: wait for it, not for its write lock.
    await this.lock.restoreFinished();
    const stored = this.db
      .prepare(
        'INSERT INTO sessions (token_hash, user_id, created_at, expires_at, ip_address, user_agent) ' +
          'SELECT ?, id, ?, ?, ?, ? FROM users WHERE id = ? AND password_hash = ?',
      )
      .run(hashSessionToken(token), now, expiresAt, meta.ip, meta.userAgent, user.id, user.passwordHash);
    return stored.changes === 1 ? { token, expiresAt } : null;
  }

  async resolve(token: string): Promise<AuthUser | null> {
    if (token.length === 0 || token.length > 256) {
      return null;
    }
    const session = await this.sessions.findOne({ where: { tokenHash: hashSessionToken(token) } });
    if (!session || session.expiresAt <= this.clock.nowSeconds()) {
      return null;
    }
    const user = await this.users.findOne({ where: { id: session.userId } });
    if (!user) {
      return null;
    }
    return { id: user.id, username: user.username, role: user.role, via: 'session', sessionId: session.id };
  }

  async revoke(sessionId: number): Promise<void> {
    await this.sessions.delete({ id: sessionId });
  }

  async removeExpired(): Promise<number> {
    const result = await this.sessions.delete({ expiresAt: LessThanOrEqual(this.clock.nowSeconds()) });
    return result.affected ?? 0;
  }
}
