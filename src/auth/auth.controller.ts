import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  ParseIntPipe,
  Post,
  Req,
  Res,
  HttpStatus,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { CookieOptions, Request, Response } from 'express';
import { ApiError } from '../common/api-error';
import { ErrorResponseDto } from '../common/error-response.dto';
import { requestMeta } from '../common/request-meta';
import { AppConfig } from '../config/app-config';
import { AuthService } from './auth.service';
import type { AuthUser } from './auth-user';
import { AdminOnly, Authenticated, CurrentUser, Public, SESSION_COOKIE } from './decorators';
import { CreateUserDto } from './dto/create-user.dto';
import { LoginDto } from './dto/login.dto';
import { ChangePasswordDto, PasswordChangedDto, ResetPasswordDto } from './dto/password.dto';
import { MeResponseDto, SuccessResponseDto, UserResponseDto, UsersResponseDto } from './dto/user.dto';
import { sessionCookieOptions } from './session-cookie';
import { SESSION_TTL_SECONDS } from './sessions.service';
import { UsersService } from './users.service';

@ApiTags('Auth')
@Controller('auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly users: UsersService,
    private readonly config: AppConfig,
  ) {}

  @Public()
  @Post('login')
  @HttpCode(200)
  @ApiOperation({ summary: 'Log in; sets the mc-session cookie (HttpOnly, SameSite=Strict)' })
  @ApiOkResponse({ type: UserResponseDto })
  @ApiBadRequestResponse({ description: 'Missing username or password', type: ErrorResponseDto })
  @ApiUnauthorizedResponse({ description: 'Invalid credentials', type: ErrorResponseDto })
  @ApiTooManyRequestsResponse({
    description: '5 failed attempts in a minute from this address',
    type: ErrorResponseDto,
  })
  async login(
    @Body() body: LoginDto,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<UserResponseDto> {
    const { user, token } = await this.auth.login(body.username, body.password, requestMeta(req));
    res.cookie(SESSION_COOKIE, token, { ...this.cookieOptions(), maxAge: SESSION_TTL_SECONDS * 1000 });
    return { user: { id: user.id, username: user.username, role: user.role } };
  }

  @Post('logout')
  @HttpCode(200)
  @Authenticated()
  @ApiOperation({ summary: 'End this session; its cookie stops working' })
  @ApiOkResponse({ type: SuccessResponseDto })
  @ApiForbiddenResponse({
    description: 'CSRF origin mismatch (a cookie request from another origin)',
    type: ErrorResponseDto,
  })
  async logout(
    @CurrentUser() user: AuthUser,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<SuccessResponseDto> {
    await this.auth.logout(user, requestMeta(req));
    res.clearCookie(SESSION_COOKIE, this.cookieOptions());
    return { success: true };
  }

  @Get('me')
  @Authenticated()
  @ApiOperation({ summary: 'The signed-in user' })
  @ApiOkResponse({ type: MeResponseDto })
  me(@CurrentUser() user: AuthUser): MeResponseDto {
    return { user: { id: user.id, username: user.username, role: user.role } };
  }

  @Post('password')
  @HttpCode(200)
  @Authenticated()
  @ApiOperation({
    summary: 'Change your own password',
    description:
      'Any signed-in user (not the API key). The new password must have at least 12 characters. Ends every ' +
      'other session of yours; this one stays signed in. A wrong current_password counts as a failed login.',
  })
  @ApiOkResponse({ description: 'Password changed; your other sessions ended', type: PasswordChangedDto })
  @ApiForbiddenResponse({
    description: 'CSRF origin mismatch (a cookie request from another origin)',
    type: ErrorResponseDto,
  })
  @ApiBadRequestResponse({
    description: 'current_password is wrong, new_password is under 12 characters, or the caller is the API key',
    type: ErrorResponseDto,
  })
  @ApiTooManyRequestsResponse({
    description: '5 failed attempts (logins or wrong current passwords) in a minute from this address',
    type: ErrorResponseDto,
  })
  async changePassword(
    @Body() body: ChangePasswordDto,
    @CurrentUser() user: AuthUser,
    @Req() req: Request,
  ): Promise<PasswordChangedDto> {
    const { sessionsEnded } = await this.auth.changeOwnPassword(
      user,
      body.current_password,
      body.new_password,
      requestMeta(req),
    );
    return { success: true, sessions_ended: sessionsEnded };
  }

  @Get('users')
  @AdminOnly()
  @ApiOperation({ summary: 'List users' })
  @ApiOkResponse({ type: UsersResponseDto })
  async listUsers(): Promise<UsersResponseDto> {
    return { users: await this.users.list() };
  }

  @Post('users')
  @AdminOnly()
  @ApiOperation({ summary: 'Create a user' })
  @ApiCreatedResponse({ type: UserResponseDto })
  @ApiBadRequestResponse({
    description: 'Password under 12 characters, unknown role, bad name',
    type: ErrorResponseDto,
  })
  @ApiConflictResponse({ description: 'The name is taken', type: ErrorResponseDto })
  async createUser(
    @Body() body: CreateUserDto,
    @CurrentUser() actor: AuthUser,
    @Req() req: Request,
  ): Promise<UserResponseDto> {
    return { user: await this.users.create(body, actor, requestMeta(req)) };
  }

  @Delete('users/:id')
  @AdminOnly()
  @ApiOperation({ summary: 'Delete a user (never the last admin)' })
  @ApiOkResponse({ type: SuccessResponseDto })
  @ApiBadRequestResponse({ description: 'The id is not a whole number', type: ErrorResponseDto })
  @ApiNotFoundResponse({ description: 'No such user', type: ErrorResponseDto })
  @ApiConflictResponse({ description: 'It is the last admin', type: ErrorResponseDto })
  async deleteUser(
    @Param(
      'id',
      new ParseIntPipe({
        exceptionFactory: () => new ApiError(HttpStatus.BAD_REQUEST, 'User id must be a whole number'),
      }),
    )
    id: number,
    @CurrentUser() actor: AuthUser,
    @Req() req: Request,
  ): Promise<SuccessResponseDto> {
    await this.users.remove(id, actor, requestMeta(req));
    return { success: true };
  }

  @Post('users/:id/password')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({
    summary: "Reset a user's password (admin)",
    description: 'Sets the password (at least 12 characters) and ends every session of that user.',
  })
  @ApiOkResponse({ description: "Password set; the user's sessions ended", type: PasswordChangedDto })
  @ApiBadRequestResponse({
    description: 'The id is not a whole number, or new_password is under 12 characters',
    type: ErrorResponseDto,
  })
  @ApiNotFoundResponse({ description: 'No such user', type: ErrorResponseDto })
  async resetPassword(
    @Param(
      'id',
      new ParseIntPipe({
        exceptionFactory: () => new ApiError(HttpStatus.BAD_REQUEST, 'User id must be a whole number'),
      }),
    )
    id: number,
    @Body() body: ResetPasswordDto,
    @CurrentUser() actor: AuthUser,
    @Req() req: Request,
  ): Promise<PasswordChangedDto> {
    return {
      success: true,
      sessions_ended: await this.users.resetPassword(id, body.new_password, actor, requestMeta(req)),
    };
  }

  private cookieOptions(): CookieOptions {
    return sessionCookieOptions(this.config);
  }
}
