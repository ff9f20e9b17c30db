import { CanActivate, ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { ApiError } from './api-error';
import { OperationLock } from './operation-lock';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
export const RETRY_AFTER_SECONDS = 5;

/** Whether the process is draining for shutdown: set by the SIGTERM handling, read by the guard and health. */
@Injectable()
export class ServiceState {
  private draining = false;

  get shuttingDown(): boolean {
    return this.draining;
  }

  beginShutdown(): void {
    this.draining = true;
  }
}

/**
 * Global, first: while shutting down, every request but health gets 503 (authenticated or not: the process is going
 * away, and a load balancer drains on it).
 */
@Injectable()
export class AvailabilityGuard implements CanActivate {
  constructor(private readonly state: ServiceState) {}

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<Request>();
    if (this.state.shuttingDown && !req.path.endsWith('/health')) {
      throw unavailable('The service is shutting down');
    }
    return true;
  }
}

/**
 * Global, after authentication, roles and CSRF (anonymous callers must learn nothing, a 401 is
 * all they get): while a restore replaces the live database, changes would be lost or land in the wrong data, so
 * mutating requests get 503 with Retry-After. Before the rate limit, so a refused request spends no budget.
 */
@Injectable()
export class RestoreInProgressGuard implements CanActivate {
  constructor(private readonly lock: OperationLock) {}

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<Request>();
    if (this.lock.running === 'restore' && MUTATING.has(req.method)) {
      throw unavailable('A restore is in progress: try again shortly');
    }
    return true;
  }
}

function unavailable(message: string): ApiError {
  return new ApiError(HttpStatus.SERVICE_UNAVAILABLE, message, {}, { 'Retry-After': String(RETRY_AFTER_SECONDS) });
}
