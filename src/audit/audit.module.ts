import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditEventEntity } from './audit-event.entity';
import { AuditController } from './audit.controller';
import { RestoreWriteGate } from '../common/restore-write-gate';
import { AuditService } from './audit.service';

@Global()
@Module({
  imports: [TypeOrmModule.forFeature([AuditEventEntity])],
  controllers: [AuditController],
  // The write gate sits here because this module is loaded wherever the database is (the service and the CLI).
  providers: [AuditService, RestoreWriteGate],
  exports: [AuditService],
})
export class AuditModule {}
