import { Global, Module } from '@nestjs/common';
import { ServiceState } from './availability';
import { Clock } from './clock';
import { OperationLock } from './operation-lock';
import { OpsEvents } from './ops-events';

@Global()
@Module({
  providers: [Clock, OperationLock, OpsEvents, ServiceState],
  exports: [Clock, OperationLock, OpsEvents, ServiceState],
})
export class CommonModule {}
