import type { Database } from 'better-sqlite3';
import type { EntityManager } from 'typeorm';
import { hashPassword } from './credentials';

/**
 * Sets a user's password and ends their sessions (all, or all but `keepSessionId`) in one synchronous transaction
 * on the shared connection (no await inside, so no other write can join it), so no session opened with the old
 * password outlives the change. Shared by the API and the CLI (which runs without AuthModule). Returns how many
 * sessions were ended.
 */
export async function replacePassword(
  manager: EntityManager,
  userId: number,
  newPassword: string,
  keepSessionId?: number,
  /** Awaited after the hash, right before the transaction: the service waits there for a running restore. */
  beforeWrite: () => Promise<void> = () => Promise.resolve(),
): Promise<number> {
  const passwordHash = await hashPassword(newPassword);
  await beforeWrite();
  const db = (manager.connection.driver as unknown as { databaseConnection: Database }).databaseConnection;
  return db
    .transaction((): number => {
      db.prepare('UPDATE users SET password_hash = ? WHERE id = ?').run(passwordHash, userId);
      const ended =
        keepSessionId === undefined
          ? db.prepare('DELETE FROM sessions WHERE user_id = ?').run(userId)
          : db.prepare('DELETE FROM sessions WHERE user_id = ? AND id != ?').run(userId, keepSessionId);
      return ended.changes;
    })
    .immediate();
}
