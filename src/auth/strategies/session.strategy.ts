import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-custom';
import type { AuthUser } from '../auth-user';
import { SESSION_COOKIE } from '../decorators';
import { SessionsService } from '../sessions.service';

/** The `mc-session` cookie set by POST /api/auth/login. */
@Injectable()
export class SessionStrategy extends PassportStrategy(Strategy, 'session') {
  constructor(private readonly sessions: SessionsService) {
    super();
  }

  async validate(req: Request): Promise<AuthUser | false> {
    const token: unknown = req.cookies?.[SESSION_COOKIE];
    if (typeof token !== 'string') {
      return false;
    }
    return (await this.sessions.resolve(token)) ?? false;
  }
}
