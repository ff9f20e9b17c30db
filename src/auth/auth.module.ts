import { Module } from '@nestjs/common';
import { PassportModule } from '@nestjs/passport';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthController } from './auth.controller';
import { AuthService } from './auth.service';
import { LoginThrottle } from './login-throttle';
import { SessionEntity } from './session.entity';
import { SessionsService } from './sessions.service';
import { ApiKeyStrategy } from './strategies/api-key.strategy';
import { SessionStrategy } from './strategies/session.strategy';
import { UserEntity } from './user.entity';
import { UsersService } from './users.service';

@Module({
  imports: [PassportModule.register({ session: false }), TypeOrmModule.forFeature([UserEntity, SessionEntity])],
  controllers: [AuthController],
  providers: [AuthService, UsersService, SessionsService, LoginThrottle, SessionStrategy, ApiKeyStrategy],
  exports: [UsersService, SessionsService],
})
export class AuthModule {}
