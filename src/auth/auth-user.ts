import { ROLES, Role } from './user.entity';

/** The authenticated caller, as guards and handlers see it on `req.user`. */
export interface AuthUser {
  /** null for the API key, which is not a stored user. */
  id: number | null;
  username: string;
  role: Role;
  via: 'session' | 'api_key';
  sessionId?: number;
}

export const API_KEY_ACTOR = 'api-key';

export function roleRank(role: Role): number {
  return ROLES.indexOf(role);
}

export function hasRole(user: Pick<AuthUser, 'role'>, required: Role): boolean {
  return roleRank(user.role) >= roleRank(required);
}
