import { DynamicModule, Global, Module } from '@nestjs/common';
import { AppConfig, loadConfig } from './app-config';
import { FaultPoints } from './fault-points';

@Global()
@Module({})
export class ConfigModule {
  /** With no argument the environment is read (and validated) once; tests pass a ready config. */
  static forRoot(config?: AppConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: AppConfig, useFactory: () => config ?? loadConfig() }, FaultPoints],
      exports: [AppConfig, FaultPoints],
    };
  }
}
