import { RequestMethod } from '@nestjs/common';
import type { Params } from 'nestjs-pino';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pino, { type DestinationStream } from 'pino';
import type { Options as PinoHttpOptions } from 'pino-http';
import type { AppConfig } from '../config/app-config';
import { assignRequestId, requestUser, routePattern } from './request-context';

/**
 * Defence in depth: request and response objects are never logged whole (see the serializers), but if a
 * header object ever reaches a log call, these paths are censored. Bodies are never logged.
 */
export const REDACTED_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["set-cookie"]',
  'password',
  '*.password',
  'token',
  '*.token',
  'apiKey',
  '*.apiKey',
];

interface RequestLine {
  method: string | undefined;
  route: string;
  status: number;
  durationMs: number;
  user: string | null;
}

function requestLine(req: IncomingMessage, res: ServerResponse, durationMs: number): RequestLine {
  return { method: req.method, route: routePattern(req), status: res.statusCode, durationMs, user: requestUser(req) };
}

function requestMessage(req: IncomingMessage, res: ServerResponse, durationMs?: number): string {
  const duration = durationMs === undefined ? '' : ` ${durationMs}ms`;
  return `${req.method ?? '?'} ${routePattern(req)} ${res.statusCode}${duration}`;
}

/**
 * The pino-http options behind nestjs-pino: one line per request when it finishes, with `reqId`, method, route
 * pattern, status, `durationMs` and user; every log written while serving the request carries the same `reqId`.
 */
export function pinoHttpOptions(config: AppConfig): PinoHttpOptions {
  return {
    level: config.logLevel,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    genReqId: assignRequestId,
    // Child loggers carry only the request id, never the request (its headers hold cookies and keys).
    quietReqLogger: true,
    quietResLogger: true,
    serializers: {
      req: (req: { id?: unknown; method?: unknown }) => ({ id: req.id, method: req.method }),
      res: (res: { statusCode?: unknown }) => ({ statusCode: res.statusCode }),
    },
    customLogLevel: (_req, res, error) => {
      if (error !== undefined || res.statusCode >= 500) {
        return 'error';
      }
      return res.statusCode >= 400 ? 'warn' : 'info';
    },
    customSuccessObject: (req, res, value: { responseTime: number }) => requestLine(req, res, value.responseTime),
    customErrorObject: (req, res, _error, value: { responseTime: number }) => requestLine(req, res, value.responseTime),
    customSuccessMessage: (req, res, responseTime) => requestMessage(req, res, responseTime),
    // The message's duration would need an argument pino-http's types leave out; the line's durationMs has it.
    customErrorMessage: (req, res) => requestMessage(req, res),
  };
}

/**
 * Where lines go: the given stream (tests); JSON on stdout in production; pino-pretty on stdout in development
 * (in-process, so no worker thread per app), or JSON when pino-pretty (a dev dependency) is not installed.
 */
export function logDestination(config: AppConfig, stream?: DestinationStream): DestinationStream {
  if (stream !== undefined) {
    return stream;
  }
  if (!config.production) {
    const pretty = loadPinoPretty();
    if (pretty !== undefined) {
      return pretty({
        colorize: process.stdout.isTTY,
        translateTime: 'SYS:standard',
        ignore: 'pid,hostname',
        sync: true,
      });
    }
  }
  return pino.destination({ dest: 1, sync: true });
}

type PrettyFactory = (options: Record<string, unknown>) => DestinationStream;

function loadPinoPretty(): PrettyFactory | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('pino-pretty') as { default: PrettyFactory }).default;
  } catch {
    return undefined;
  }
}

/** The nestjs-pino module parameters for this app. */
export function loggerParams(config: AppConfig, stream?: DestinationStream): Params {
  return {
    pinoHttp: [pinoHttpOptions(config), logDestination(config, stream)],
    // Every route, in path-to-regexp 8 syntax (nestjs-pino's default `*` makes Nest 11 warn at start).
    forRoutes: [{ path: '{*splat}', method: RequestMethod.ALL }],
  };
}
