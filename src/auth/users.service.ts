import { Injectable, Logger, OnApplicationBootstrap, HttpStatus } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { chmodSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Repository } from 'typeorm';
import { AuditService, SYSTEM_ACTORS } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import { Clock } from '../common/clock';
import { OperationLock } from '../common/operation-lock';
import type { RequestMeta } from '../common/request-meta';
import { AppConfig } from '../config/app-config';
import type { AuthUser } from './auth-user';
import { hashPassword, randomPassword } from './credentials';
import { replacePassword } from './passwords';
import { Role, UserEntity } from './user.entity';

export interface PublicUser {
  id: number;
  username: string;
  role: Role;
  created_at: number;
}

export function toPublicUser(user: UserEntity): PublicUser {
  return { id: user.id, username: user.username, role: user.role, created_at: user.createdAt };
}

/** Where the first start writes the generated admin password: beside the database. */
export function initialPasswordFile(dbPath: string): string {
  return path.join(path.dirname(dbPath), 'initial-admin-password');
}

@Injectable()
export class UsersService implements OnApplicationBootstrap {
  private readonly logger = new Logger(UsersService.name);

  constructor(
    @InjectRepository(UserEntity) private readonly users: Repository<UserEntity>,
    private readonly audit: AuditService,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly lock: OperationLock,
  ) {}

  /** First start: create the configured admin, or `admin` with a random password written to a 0600 file. */
  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.createFirstAdmin();
    } catch (error) {
      // A damaged live schema must not stop start-up: health reports it, and the CLI can restore a backup.
      this.logger.error(
        `Could not check for a first admin at start-up: ${error instanceof Error ? error.name : 'error'}`,
      );
    }
  }

  private async createFirstAdmin(): Promise<void> {
    if ((await this.users.count()) > 0) {
      return;
    }
    const username = this.config.authUser ?? 'admin';
    const password = this.config.authPass ?? randomPassword();
    await this.users.insert({
      username,
      passwordHash: await hashPassword(password),
      role: 'admin',
      createdAt: this.clock.nowSeconds(),
    });
    await this.audit.record({
      action: 'user_create',
      actor: SYSTEM_ACTORS.system,
      targetType: 'user',
      targetId: username,
      detail: { username, role: 'admin', bootstrap: true },
    });
    if (this.config.authPass === undefined) {
      // Never in the log (logs are shipped and kept): in a file only the service's user can read.
      const file = initialPasswordFile(this.config.dbPath);
      writeFileSync(file, `${password}\n`, { mode: 0o600 });
      chmodSync(file, 0o600);
      this.logger.warn(
        `Created admin user "${username}"; its password is in ${file} (mode 0600). Log in, change it with ` +
          'POST /api/auth/password, then delete the file',
      );
    } else {
      this.logger.log(`Created admin user "${username}" from AUTH_USER/AUTH_PASS`);
    }
  }

  findByUsername(username: string): Promise<UserEntity | null> {
    return this.users.findOne({ where: { username } });
  }

  findById(id: number): Promise<UserEntity | null> {
    return this.users.findOne({ where: { id } });
  }

  async list(): Promise<PublicUser[]> {
    return (await this.users.find({ order: { id: 'ASC' } })).map(toPublicUser);
  }

  countAdmins(): Promise<number> {
    return this.users.count({ where: { role: 'admin' } });
  }

  async create(
    input: { username: string; password: string; role: Role },
    actor: AuthUser,
    meta: RequestMeta,
  ): Promise<PublicUser> {
    if (await this.findByUsername(input.username)) {
      throw new ApiError(HttpStatus.CONFLICT, 'Username already taken');
    }
    const passwordHash = await hashPassword(input.password);
    let created: UserEntity;
    try {
      created = await this.users.save(
        this.users.create({ ...input, passwordHash, createdAt: this.clock.nowSeconds() }),
        { transaction: false },
      );
    } catch (error) {
      // Two requests racing for one name: the UNIQUE index decides.
      if (String(error).includes('UNIQUE')) {
        throw new ApiError(HttpStatus.CONFLICT, 'Username already taken');
      }
      throw error;
    }
    await this.audit.record({
      action: 'user_create',
      actor,
      targetType: 'user',
      targetId: String(created.id),
      detail: { username: created.username, role: created.role },
      meta,
    });
    return toPublicUser(created);
  }

  async remove(id: number, actor: AuthUser, meta: RequestMeta): Promise<void> {
    const user = await this.findById(id);
    if (!user) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'User not found');
    }
    if (user.role === 'admin' && (await this.countAdmins()) <= 1) {
      throw new ApiError(HttpStatus.CONFLICT, 'Cannot delete the last admin');
    }
    await this.users.delete({ id });
    await this.audit.record({
      action: 'user_delete',
      actor,
      targetType: 'user',
      targetId: String(id),
      detail: { username: user.username, role: user.role },
      meta,
    });
  }

  /** An admin sets another user's (or their own) password; every session of that user ends. */
  async resetPassword(id: number, newPassword: string, actor: AuthUser, meta: RequestMeta): Promise<number> {
    const user = await this.findById(id);
    if (!user) {
      throw new ApiError(HttpStatus.NOT_FOUND, 'User not found');
    }
    const sessionsEnded = await replacePassword(this.users.manager, id, newPassword, undefined, () =>
      this.lock.restoreFinished(),
    );
    await this.audit.record({
      action: 'password_reset',
      actor,
      targetType: 'user',
      targetId: String(id),
      detail: { username: user.username, sessions_ended: sessionsEnded },
      meta,
    });
    return sessionsEnded;
  }
}
