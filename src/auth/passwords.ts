import { EntityManager, Not } from 'typeorm';
import { hashPassword } from './credentials';
import { SessionEntity } from './session.entity';
import { UserEntity } from './user.entity';

/**
 * Sets a user's password and ends their sessions (all, or all but `keepSessionId`) in one transaction, so no
 * session opened with the old password outlives the change. Shared by the API and the CLI (which runs without
 * AuthModule). Returns how many sessions were ended.
 */
export async function replacePassword(
  manager: EntityManager,
  userId: number,
  newPassword: string,
  keepSessionId?: number,
): Promise<number> {
  const passwordHash = await hashPassword(newPassword);
  return manager.transaction(async (tx) => {
    await tx.update(UserEntity, { id: userId }, { passwordHash });
    const ended = await tx.delete(
      SessionEntity,
      keepSessionId === undefined ? { userId } : { userId, id: Not(keepSessionId) },
    );
    return ended.affected ?? 0;
  });
}
