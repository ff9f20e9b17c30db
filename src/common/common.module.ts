import { Global, Module } from '@nestjs/common';
import { ServiceState } from './availability';
import { Clock } from './clock';
import { OperationLock } from './operation-lock';
import { OpsEvents } from './ops-events';
import { RemoteCopies } from './remote-copies';

@Global()
@Module({
  providers: [Clock, OperationLock, OpsEvents, ServiceState, RemoteCopies],
  exports: [Clock, OperationLock, OpsEvents, ServiceState, RemoteCopies],
})
export class CommonModule {}
