import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LessThanOrEqual, Repository } from 'typeorm';
import { Clock } from '../common/clock';
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
  ) {}

  /** Returns the cookie token; only its hash is stored. Expired rows are swept on the way. */
  async create(user: UserEntity, meta: RequestMeta): Promise<{ token: string; expiresAt: number }> {
    await this.removeExpired();
    const token = newSessionToken();
    const now = this.clock.nowSeconds();
    const expiresAt = now + SESSION_TTL_SECONDS;
    await this.sessions.insert({
      tokenHash: hashSessionToken(token),
      userId: user.id,
      createdAt: now,
      expiresAt,
      ipAddress: meta.ip,
      userAgent: meta.userAgent,
    });
    return { token, expiresAt };
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
