import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ObservabilityModule } from '../observability/observability.module';
import { HealthController } from './health.controller';
import { HealthService } from './health.service';
import { OffsiteHealthIndicator } from './offsite.indicator';

@Module({
  imports: [TerminusModule.forRoot({ errorLogStyle: 'json' }), ObservabilityModule],
  controllers: [HealthController],
  providers: [HealthService, OffsiteHealthIndicator],
})
export class HealthModule {}
