import { INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import cookieParser from 'cookie-parser';
import type { NextFunction, Request, Response } from 'express';
import helmet from 'helmet';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { API_KEY_SECURITY, BEARER_SECURITY, SESSION_COOKIE } from './auth/decorators';
import { AppConfig } from './config/app-config';
import { configureHttpBodies } from './common/http-body';
import { constructWithExpressPrototypes, type ExpressPrototypes } from './http/express-prototypes';
import { requireJsonBody } from './common/json-only';
import { documentErrorExamples, packageVersion } from './common/openapi-errors';
import { createValidationPipe } from './common/validation';
import { MetricsService } from './observability/metrics.service';
import { ObservabilityOptions, ObservabilityOptionsModule } from './observability/observability-options';
import { QuietStartupLogger } from './observability/quiet-startup-logger';
import { IdleHeapRelease } from './common/idle-heap';

export const JSON_BODY_LIMIT = '256kb';

/** Holds the test seams (none in production) beside the whole service. */
@Module({})
class ServiceRootModule {}

/**
 * Builds the app exactly as production runs it; the e2e tests call this too, so they test the real thing.
 * `options` are seams for tests (a log stream, fast alert retries, a fake disk); production passes none.
 */
export async function createApp(
  config: AppConfig,
  options: ObservabilityOptions = {},
): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(
    { module: ServiceRootModule, imports: [ObservabilityOptionsModule.forRoot(options), AppModule.forRoot(config)] },
    // Start-up logs wait for pino (LOG_LEVEL decides what is printed).
    { bodyParser: false, bufferLogs: true },
  );
  // Nest's own and every service's Logger now write through pino; replay what start-up buffered.
  app.useLogger(new QuietStartupLogger(app.get(Logger)));
  app.flushLogs();
  configureApp(app, config, options);
  return app;
}

export function configureApp(app: NestExpressApplication, config: AppConfig, options: ObservabilityOptions = {}): void {
  // Requests born with Express's prototypes: a third of what each one allocated otherwise outlived minor collections.
  constructWithExpressPrototypes(app.getHttpServer(), app.getHttpAdapter().getInstance() as ExpressPrototypes);
  // First, so every request is timed, including ones refused by later middleware.
  app.use(app.get(MetricsService).httpMiddleware);
  app.use(new IdleHeapRelease().middleware);
  // Body idle timeout instead of a total request timeout; 100-continue decided by the upload route itself.
  app.use(configureHttpBodies(app.getHttpServer(), options.httpBody));
  // X-Forwarded-For is believed only from proxies the operator named.
  app.set('trust proxy', config.trustedProxies.length > 0 ? config.trustedProxies : false);
  app.disable('x-powered-by');
  app.use(
    helmet({
      // Over plain HTTP on a host name (HOST=0.0.0.0 on a LAN), upgrade-insecure-requests makes browsers fetch
      // Swagger UI's scripts and styles over https, which fails. Every resource is same-origin anyway.
      contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
      // HSTS over plain http is meaningless at best; see below.
      strictTransportSecurity: false,
    }),
  );
  // HSTS only when the client reached us over https (req.secure honours X-Forwarded-Proto from TRUSTED_PROXIES
  // only), or when the operator declared an https deployment with MC_COOKIE_SECURE.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (req.secure || config.cookieSecure) {
      res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    }
    next();
  });
  app.use(cookieParser());
  app.useBodyParser('json', { limit: JSON_BODY_LIMIT });
  app.use(requireJsonBody);
  app.setGlobalPrefix('api', { exclude: ['metrics', '/'] });
  app.useGlobalPipes(createValidationPipe());
  SwaggerModule.setup('api/docs', app, () => buildOpenApiDocument(app), {
    jsonDocumentUrl: 'api/docs-json',
    swaggerOptions: { persistAuthorization: true },
  });
}

export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const options = new DocumentBuilder()
    .setTitle('Mission Control Backups')
    .setDescription(
      'Hot, consistent SQLite backups: create, list, verify, download, upload, restore and prune. ' +
        'Every backup route is admin only. Authenticate with the mc-session cookie (POST /api/auth/login) ' +
        'or the API key (x-api-key header, or Authorization: Bearer).',
    )
    .setVersion(packageVersion())
    // Swagger UI lists tags in this order: what the service is for first.
    .addTag('Backups', 'Create, list, verify, download, upload, restore and delete backups')
    .addTag('Scheduler', 'The automatic backup and the restore drill')
    .addTag('Settings', 'Retention, schedule, alerts')
    .addTag('Audit', 'Who did what, when')
    .addTag('Auth', 'Log in, log out, users and passwords')
    .addTag('Health', 'For load balancers and monitors (no authentication)')
    .addTag('Metrics', 'Prometheus text format')
    .addCookieAuth(SESSION_COOKIE, { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE }, SESSION_COOKIE)
    .addApiKey({ type: 'apiKey', in: 'header', name: 'x-api-key' }, API_KEY_SECURITY)
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'The API key as a bearer token' }, BEARER_SECURITY)
    .build();
  return documentErrorExamples(SwaggerModule.createDocument(app, options));
}
