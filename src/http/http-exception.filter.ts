import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
  NotFoundException,
  Optional,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Request, Response } from 'express';
import { ApiError } from '../common/api-error';
import { DOMAIN_ERROR_STATUS, DomainError } from '../common/domain-error';
import { refundRefusedInput } from './rate-limit';

const GENERIC_MESSAGES: Record<number, string> = {
  400: 'Bad request',
  401: 'Authentication required',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  409: 'Conflict',
  413: 'Request body too large',
  415: 'Unsupported media type',
  429: 'Too many requests',
  503: 'Service unavailable',
};

/** What this filter reads of an Express 5 router layer. */
interface RouterLayer {
  route?: { methods: Record<string, boolean> };
  match(path: string): boolean;
}

/** Errors raised by Express middleware (body-parser) carry a status but are not HttpExceptions. */
interface MiddlewareError {
  status?: number;
  statusCode?: number;
  type?: string;
}

/**
 * The one place an error becomes a response. Every 4xx/5xx body is `{ error: string, ...extra }`; no body
 * carries a stack, a file path or a raw exception message (those go to the log for 5xx only).
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpExceptionFilter');

  constructor(@Optional() private readonly adapterHost?: HttpAdapterHost) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const request = host.switchToHttp().getRequest<Request>();
    refundRefusedInput(request, exception);
    const notAllowed = this.methodNotAllowed(exception, request);
    if (notAllowed !== null && !response.headersSent) {
      response.setHeader('Allow', notAllowed.join(', '));
      response
        .status(HttpStatus.METHOD_NOT_ALLOWED)
        .json({ error: `Method not allowed: use ${notAllowed.join(', ')}` });
      return;
    }
    const { status, body } = this.toResponse(exception);
    if (status >= 500) {
      if (exception instanceof ApiError) {
        // Thrown on purpose by a service that has already logged the cause: one line, no stack of the throw site.
        const reason = typeof body.reason === 'string' ? ` (${body.reason})` : '';
        this.logger.error(`${status} ${String(body.error)}${reason}`);
      } else {
        // Not expected anywhere: a bug, so the whole stack.
        this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
      }
    }
    if (response.headersSent) {
      response.end();
      return;
    }
    if (exception instanceof ApiError) {
      for (const [name, value] of Object.entries(exception.headers)) {
        response.setHeader(name, value);
      }
    }
    response.status(status).json(body);
  }

  toResponse(exception: unknown): { status: number; body: Record<string, unknown> } {
    if (exception instanceof DomainError) {
      return { status: DOMAIN_ERROR_STATUS[exception.kind], body: { error: exception.message } };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const payload = exception.getResponse();
      if (typeof payload === 'object' && payload !== null && !('statusCode' in payload)) {
        // Thrown by our own code as { error, ...extra }: already safe to show.
        const body = payload as Record<string, unknown>;
        return { status, body: { ...body, error: typeof body.error === 'string' ? body.error : this.generic(status) } };
      }
      const message =
        typeof payload === 'object' && payload !== null ? (payload as { message?: unknown }).message : null;
      if (Array.isArray(message)) {
        return { status, body: { error: 'Validation failed', details: message.map(String) } };
      }
      if (status === 404 || status === 429 || status >= 500) {
        return { status, body: { error: this.generic(status) } };
      }
      if (typeof message === 'string' && /JSON/.test(message)) {
        // body-parser's SyntaxError text quotes the client's bytes back; say what is wrong instead.
        return { status, body: { error: 'Malformed JSON body' } };
      }
      return { status, body: { error: typeof message === 'string' ? message : this.generic(status) } };
    }
    const middleware = exception as MiddlewareError | null;
    const middlewareStatus = middleware?.status ?? middleware?.statusCode;
    if (typeof middlewareStatus === 'number' && middlewareStatus >= 400 && middlewareStatus < 500) {
      const error = middleware?.type === 'entity.parse.failed' ? 'Malformed JSON body' : this.generic(middlewareStatus);
      return { status: middlewareStatus, body: { error } };
    }
    return { status: HttpStatus.INTERNAL_SERVER_ERROR, body: { error: 'Internal server error' } };
  }

  /**
   * Nest answers every unmatched method and path with one 404. When the path exists with other methods (PATCH on
   * /api/settings), the methods it has, for a 405 with `Allow`; else null.
   */
  private methodNotAllowed(exception: unknown, req: Request): string[] | null {
    if (!(exception instanceof NotFoundException) || exception instanceof ApiError || req === undefined) {
      return null;
    }
    const express = this.adapterHost?.httpAdapter?.getInstance<{ router?: { stack?: RouterLayer[] } }>();
    const methods = new Set<string>();
    for (const layer of express?.router?.stack ?? []) {
      // Middleware Nest mounts with app.all (every one of Express's ~35 methods) says nothing about a route.
      const mountedForAll = layer.route !== undefined && Object.keys(layer.route.methods).length > 10;
      if (layer.route !== undefined && !mountedForAll && layer.match(req.path)) {
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (on && method !== '_all') {
            methods.add(method.toUpperCase());
          }
        }
      }
    }
    if (methods.size === 0 || methods.has(req.method)) {
      return null;
    }
    if (methods.has('GET')) {
      methods.add('HEAD');
    }
    return [...methods].sort();
  }

  private generic(status: number): string {
    return GENERIC_MESSAGES[status] ?? (status >= 500 ? 'Internal server error' : 'Request failed');
  }
}
