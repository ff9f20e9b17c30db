import type { AuditActor } from '../audit/audit.service';
import type { RequestMeta } from '../common/request-meta';

/** Who the audit trail names for everything done from the command line. */
export const CLI_ACTOR: AuditActor = { id: null, username: 'cli' };

/** A command line has no client address or user agent. */
export const CLI_META: RequestMeta = { ip: null, userAgent: null };
