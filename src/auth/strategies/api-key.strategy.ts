import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { Strategy } from 'passport-custom';
import { AppConfig } from '../../config/app-config';
import { API_KEY_ACTOR, AuthUser } from '../auth-user';
import { secretsEqual } from '../credentials';

/** The key presented by the request: `x-api-key`, else `Authorization: Bearer`. */
export function presentedApiKey(req: Request): string | undefined {
  const header = req.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') {
    return header;
  }
  const authorization = req.headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    if (match) {
      return match[1];
    }
  }
  return undefined;
}

/** API_KEY authenticates as an admin that is not a stored user. */
@Injectable()
export class ApiKeyStrategy extends PassportStrategy(Strategy, 'api-key') {
  constructor(private readonly config: AppConfig) {
    super();
  }

  validate(req: Request): AuthUser | false {
    const given = presentedApiKey(req);
    const expected = this.config.apiKey;
    if (given === undefined || expected === undefined || !secretsEqual(given, expected)) {
      return false;
    }
    return { id: null, username: API_KEY_ACTOR, role: 'admin', via: 'api_key' };
  }
}
