import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-custom';
import type { AuthUser } from '../auth-user';
import { presentedSessionToken } from '../session-cookie';
import { SessionsService } from '../sessions.service';

/** The `mc-session` cookie set by POST /api/auth/login. */
@Injectable()
export class SessionStrategy extends PassportStrategy(Strategy, 'session') {
  constructor(private readonly sessions: SessionsService) {
    super();
  }

  async validate(req: Request): Promise<AuthUser | false> {
    const token = presentedSessionToken(req);
    if (token === undefined) {
      return false;
    }
    return (await this.sessions.resolve(token)) ?? false;
  }
}
