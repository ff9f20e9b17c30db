import { Controller, Get } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { Public } from '../auth/decorators';
import { packageVersion } from '../common/openapi-errors';

/** Where a browser or `curl localhost:3000` lands first: a pointer to the documentation instead of a bare 404. */
@ApiExcludeController()
@Public()
@Controller()
export class RootController {
  private readonly version = packageVersion();

  @Get()
  index(): Record<string, string> {
    return {
      name: 'Mission Control Backups',
      version: this.version,
      docs: '/api/docs',
      openapi: '/api/docs-json',
      health: '/api/health',
    };
  }
}
